/**
 * The integrity badge's content, derived from a verdict: Verified / Tampered / Unverifiable, what it
 * rests on, and whether the trace is this clinician's own ticket. Plain data, so it is tested without
 * a browser and rendered by the badge component.
 */
import { HL7_PURPOSES_OF_USE } from '../../core/policy/purposes.ts';
import type { Check, Verdict } from '../../core/protect/verdict.ts';

export type BadgeState = 'verified' | 'tampered' | 'unverifiable';

export interface BadgeModel {
  readonly state: BadgeState;
  /** Starts with "Verified", "Tampered" or "Unverifiable" (the e2e tests read it). */
  readonly title: string;
  readonly lines: readonly string[];
  readonly failed: readonly Check[];
}

export interface BadgeContext {
  /** The trace id (hex) this clinician's ticket asked the cloud to insert, when known. */
  readonly expectedTrace?: string;
}

export function badgeModel(v: Verdict, ctx: BadgeContext = {}): BadgeModel {
  const failed = v.checks.filter((c) => c.result === 'fail');
  const unknown = v.checks.filter((c) => c.result === 'unknown');
  const producer = v.seal?.signer?.subject ?? `unknown producer key ${v.seal?.keyId ?? ''}`.trim();
  const cloud =
    v.trace?.signer?.subject ?? (v.trace ? `unknown cloud key ${v.trace.keyId}` : undefined);
  const wrongTrace = !!ctx.expectedTrace && !!v.trace && v.trace.id !== ctx.expectedTrace;
  const missingTrace = !!ctx.expectedTrace && !v.trace;
  if (v.status === 'tampered' || wrongTrace || missingTrace) {
    const what = [...v.tampered];
    if (wrongTrace) what.push('trace');
    if (missingTrace) what.push('trace');
    const lines = [
      ...failed.map((c) => c.detail),
      ...(wrongTrace ? ["the trace is not this clinician's ticket"] : []),
      ...(missingTrace ? ['the cloud did not insert the trace of this ticket'] : []),
      ...(v.tiles.length ? [`${v.tiles.length} tampered tile(s) outlined on the image`] : []),
    ];
    return {
      state: 'tampered',
      title: `Tampered — ${[...new Set(what)].join(', ')}`,
      lines,
      failed,
    };
  }
  if (v.status === 'unverifiable')
    return {
      state: 'unverifiable',
      title: 'Unverifiable',
      lines: unknown.map((c) => c.detail),
      failed,
    };
  const pseudonymised = v.disclosure === 'pseudonymised';
  return {
    state: 'verified',
    title: pseudonymised ? 'Verified — pseudonymised' : 'Verified',
    lines: [
      `sealed by ${producer} on ${v.seal?.createdAt ?? '?'}`,
      v.trace
        ? `traced by ${cloud} on ${v.trace.tracedAt}${ctx.expectedTrace ? ' — your ticket' : ''}`
        : 'not traced',
      pseudonymised
        ? "original pixels restored exactly; the patient's identity stays encrypted (the ticket's purpose releases the pseudonymised header only)"
        : v.keyed
          ? 'original pixels and header restored exactly'
          : 'checked without the image key',
    ],
    failed,
  };
}

/**
 * What the viewer says of an image opened without the patient's identity (a ticket for a purpose
 * the producer's policy marks de-identified): "Pseudonymised for research", or for the purpose asked.
 */
export function pseudonymisedFor(purpose?: string): string {
  if (!purpose) return 'Pseudonymised';
  const name =
    purpose === 'HRESCH' || purpose === 'CLINTRCH'
      ? 'research'
      : (HL7_PURPOSES_OF_USE[purpose] ?? purpose);
  return `Pseudonymised for ${name}`;
}
