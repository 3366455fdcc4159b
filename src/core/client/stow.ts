/**
 * A STOW-RS client (DICOMweb, PS3.18 10.5) for the producer hospital's `POST /studies`: sends DICOM
 * instances as one multipart/related body with the hospital integration token, and reads the PS3.18
 * JSON answer — how many were stored, and each refused one's reason (from the private attribute the
 * producer fills, else the Error Comment). Fetch only: the command line, `npm start`, the tests and the
 * benchmarks use it alike.
 */
import { randomBytes, toBase64Url } from '../bytes.ts';
import { buildMultipart } from '../multipart.ts';
import { jsonKey, T } from '../dicom/tags.ts';
import { ZtvError } from '../errors.ts';

export interface StowInstance {
  /** How a refusal names it (a file name, say). */
  readonly name: string;
  readonly bytes: Uint8Array;
}

export interface StowResult {
  readonly stored: number;
  /** Of the stored, those the producer had stored before (answered from its records). */
  readonly already: number;
  /** `<name>: <reason>` for each refused instance. */
  readonly failed: readonly string[];
}

type StowJson = Record<
  string,
  { Value?: Record<string, { Value?: unknown[] }>[] } | string | undefined
>;

/** Stores `instances` at the producer in one request; refusals are answered, not thrown. */
export async function stowInstances(
  producerUrl: string,
  token: string,
  instances: readonly StowInstance[],
  f: typeof fetch = fetch,
): Promise<StowResult> {
  const boundary = `ztv-stow-${toBase64Url(randomBytes(9))}`;
  const body = buildMultipart(
    instances.map((i) => ({ body: i.bytes })),
    boundary,
  ) as Uint8Array<ArrayBuffer>;
  let r: Response;
  try {
    r = await f(`${producerUrl}/studies`, {
      method: 'POST',
      headers: {
        'content-type': `multipart/related; type="application/dicom"; boundary=${boundary}`,
        authorization: `Bearer ${token}`,
      },
      body,
    });
  } catch (e) {
    const cause = (e as { cause?: { code?: string } }).cause?.code ?? (e as Error).message;
    throw new ZtvError('bad-input', `the producer at ${producerUrl} cannot be reached (${cause})`);
  }
  const json = (await r.json().catch(() => ({}))) as StowJson;
  if (r.status === 401) throw new ZtvError('bad-key', 'the producer refused the integration token');
  if (r.status >= 400 && r.status !== 409)
    throw new ZtvError(
      'bad-input',
      `the producer refused the upload: ${r.status} ${typeof json.message === 'string' ? json.message : ''}`.trim(),
    );
  const seq = (tag: string) => {
    const v = json[tag];
    return typeof v === 'object' ? (v.Value ?? []) : [];
  };
  const failed: string[] = [];
  for (const item of seq(jsonKey(T.FailedSOPSequence))) {
    // "part N: reason", N counted from 1 within this request: name the instance instead.
    // The producer puts the whole reason in (0009,1001) of its block, the first 64 characters
    // in the Error Comment.
    const text = String(
      item['00091001']?.Value?.[0] ?? item[jsonKey(T.ErrorComment)]?.Value?.[0] ?? 'refused',
    );
    const m = /^part (\d+): ([\s\S]*)$/.exec(text);
    const name = m ? instances[Number(m[1]) - 1]?.name : undefined;
    failed.push(name ? `${name}: ${m![2]}` : text);
  }
  const stored = seq(jsonKey(T.ReferencedSOPSequence));
  // (0009,1002) of the producer's private block `ZTV 1` says whether it was stored before.
  const already = stored.filter((i) => i['00091002']?.Value?.[0] === 'ALREADY_STORED').length;
  return { stored: stored.length, already, failed };
}
