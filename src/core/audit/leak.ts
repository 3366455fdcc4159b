/**
 * Leak tracing, the keyless half: from the bytes of an image found where it should not be, read the
 * container, verify the producer's seal and the cloud's trace against the federation's PKI, and say
 * whether the trace is evidence. A trace whose signature fails, whose signer the PKI does not certify as
 * the cloud, or that sits on a seal that does not verify is *forged*: it names no one. Only a verified
 * trace is then resolved through the producer's log (see `AuditorClient.traceLeak`).
 */
import { inspectProtected } from '../protect/inspect.ts';
import { verifyProtected } from '../protect/open.ts';
import type { SignerResolver } from '../protect/signers.ts';
import type { Check, Verdict } from '../protect/verdict.ts';

/** resolved: a verified trace the producer knows; unknown: verified, but no log knows it. */
export type LeakStatus = 'resolved' | 'unknown' | 'forged' | 'untraced';

export interface LeakExamination {
  /** forged or untraced here; resolved/unknown are decided by the producer's log. */
  readonly trace: 'verified' | 'forged' | 'untraced';
  /** The trace identifier (hex) as the container holds it, whether or not it verifies. */
  readonly traceId?: string;
  readonly tracedAt?: string;
  /** Who signed the trace and the seal, as the PKI names them (when they resolve). */
  readonly cloud?: string;
  readonly producer?: string;
  /** Why the trace is not evidence, one sentence per failed check. */
  readonly reasons: readonly string[];
  /** Whether the rest of the image (ciphertext, protected header) is as sealed. */
  readonly imageIntact: boolean;
  readonly verdict: Verdict;
}

const failed = (c: Check) => c.result === 'fail' || c.result === 'unknown';

/** Examines a leaked protected image without any key. Throws a ZtvError if it is not protected. */
export async function examineLeak(
  bytes: Uint8Array,
  resolver: SignerResolver,
  what = 'the image',
): Promise<LeakExamination> {
  const container = inspectProtected(bytes, what);
  const verdict = await verifyProtected(bytes, { resolver, what });
  const traceChecks = verdict.checks.filter((c) => c.part === 'trace');
  const sealChecks = verdict.checks.filter(
    (c) => c.id.startsWith('seal.') || c.id.startsWith('container.'),
  );
  const other = verdict.checks.filter((c) => !traceChecks.includes(c) && !sealChecks.includes(c));
  const base = {
    ...(container.trace ? { traceId: container.trace.id, tracedAt: container.trace.tracedAt } : {}),
    ...(verdict.trace?.signer ? { cloud: verdict.trace.signer.subject } : {}),
    ...(verdict.seal?.signer ? { producer: verdict.seal.signer.subject } : {}),
    imageIntact: !other.some(failed),
    verdict,
  };
  if (!container.trace && !traceChecks.some((c) => c.id === 'trace.structure'))
    return {
      ...base,
      trace: 'untraced',
      reasons: ['no cloud has traced this image: it was never served through a ticket'],
    };
  const reasons = [...sealChecks, ...traceChecks].filter(failed).map((c) => c.detail);
  const signed = traceChecks.some((c) => c.id === 'trace.signature' && c.result === 'pass');
  if (!reasons.length && !signed) reasons.push("the cloud's trace signature was not checked");
  return { ...base, trace: reasons.length ? 'forged' : 'verified', reasons };
}
