/** User-facing errors: a stable code for programs and one clear sentence for people. */

export type ErrorCode =
  | 'bad-input' // a caller passed something malformed (wrong type, length, range)
  | 'not-dicom' // the bytes are not a DICOM file or data set
  | 'truncated' // the file ends before an element it announces
  | 'unsupported' // valid DICOM we do not handle (transfer syntax, pixel format)
  | 'capacity' // the image cannot carry the protection container
  | 'not-protected' // the file carries no protection container
  | 'unsupported-version' // a container version this build does not read
  | 'wrong-key' // the image key does not open this image
  | 'bad-key' // a key file is unreadable or of the wrong kind
  | 'integrity' // verification failed where the caller asked for a verified result
  | 'ticket'; // a blind ticket is forged, expired, replayed, for someone else or malformed

export class ZtvError extends Error {
  readonly code: ErrorCode;
  readonly details: Readonly<Record<string, unknown>>;
  constructor(code: ErrorCode, message: string, details: Record<string, unknown> = {}) {
    super(message);
    this.name = 'ZtvError';
    this.code = code;
    this.details = details;
  }
}

export function isZtvError(e: unknown): e is ZtvError {
  return e instanceof ZtvError;
}

/** Throws a bad-input error unless `cond` holds: the assertion used at every API edge. */
export function assertInput(cond: unknown, message: string): asserts cond {
  if (!cond) throw new ZtvError('bad-input', message);
}
