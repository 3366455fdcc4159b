/**
 * The structured result of verifying a protected image: one status, every check with its outcome,
 * the tampered parts and tiles, and who sealed and traced the image. JSON-serialisable as it is.
 */

export type Status = 'verified' | 'tampered' | 'unverifiable';

/** The parts of a protected image a check can find altered. */
export type Part = 'pixels' | 'container' | 'header' | 'attributes' | 'trace';

export type CheckResult = 'pass' | 'fail' | 'unknown' | 'skipped';

export interface Check {
  /** Stable identifier, e.g. "seal.signature". */
  readonly id: string;
  readonly part: Part;
  readonly result: CheckResult;
  /** One sentence for people. */
  readonly detail: string;
}

/** A tampered tile, in image pixels (frame counted from 1). */
export interface TileReport {
  readonly frame: number;
  readonly index: number;
  readonly x: number;
  readonly y: number;
  readonly width: number;
  readonly height: number;
}

export interface SignerReport {
  readonly subject: string;
  readonly chain: readonly string[];
  readonly keyId: string;
}

export interface SealReport {
  readonly createdAt: string;
  readonly signer?: SignerReport;
  readonly keyId: string;
}

export interface TraceReport {
  /** The trace identifier (hex) and, when printable, as text. */
  readonly id: string;
  readonly text?: string;
  readonly tracedAt: string;
  readonly keyId: string;
  readonly signer?: SignerReport;
  /** Format v2: the release the trace belongs to and the image's leaf in its signed tree. */
  readonly release?: {
    readonly redemption: string;
    readonly root: string;
    readonly leaf: number;
    readonly leaves: number;
  };
}

export interface Verdict {
  readonly status: Status;
  /** One sentence saying what the status rests on. */
  readonly summary: string;
  readonly checks: readonly Check[];
  readonly tampered: readonly Part[];
  readonly tiles: readonly TileReport[];
  readonly seal?: SealReport;
  /** Null while no cloud has traced the image. */
  readonly trace?: TraceReport | null;
  /** Whether the image key was used (pixels and attributes checked after decryption). */
  readonly keyed: boolean;
  /**
   * With a key that opens the image: whether it restored the patient's identity (`identified`, the
   * image key K_i) or the pixels and pseudonymised header only (`pseudonymised`, the pixel key K_p
   * of a ticket for a de-identified purpose such as research).
   */
  readonly disclosure?: 'identified' | 'pseudonymised';
}

/** Derives status and summary from the checks: any failure is tampering; an unknown signer, unverifiable. */
export function decide(
  checks: readonly Check[],
  rest: Omit<Verdict, 'status' | 'summary' | 'checks' | 'tampered'>,
): Verdict {
  const failed = checks.filter((c) => c.result === 'fail');
  const unknown = checks.filter((c) => c.result === 'unknown');
  const tampered = [...new Set(failed.map((c) => c.part))];
  const sealUnknown = unknown.some((c) => c.id.startsWith('seal.') || c.id === 'container.version');
  let status: Status;
  let summary: string;
  if (sealUnknown) {
    status = 'unverifiable';
    summary = `cannot verify: ${unknown.map((c) => c.detail).join('; ')}`;
  } else if (failed.length > 0) {
    status = 'tampered';
    summary = `tampered (${tampered.join(', ')}): ${failed.map((c) => c.detail).join('; ')}`;
  } else if (unknown.length > 0) {
    status = 'unverifiable';
    summary = `cannot verify: ${unknown.map((c) => c.detail).join('; ')}`;
  } else {
    status = 'verified';
    summary =
      rest.disclosure === 'pseudonymised'
        ? 'verified: seal, trace, ciphertext, restored pixels and pseudonymised header check out; the identity is withheld'
        : rest.keyed
          ? 'verified: seal, trace, ciphertext, restored pixels and header all check out'
          : 'verified without the image key: seal, trace and ciphertext check out';
  }
  return { status, summary, checks, tampered, ...rest };
}
