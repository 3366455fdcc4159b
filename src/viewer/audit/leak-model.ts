/**
 * What the auditor reads about a leaked file: the tracing report (`AuditorClient.traceLeak`) as a
 * title, an explanation, labelled fields and the reasons a trace is no evidence — resolved (who
 * obtained the image, when, under which ticket, for what purpose and by which rules, break-glass and its
 * review), forged, unknown to every log, never traced; or the file is no protected image at all, or a
 * party could not answer. Pure: tested without a browser.
 */
import type { LeakReport } from '../../core/audit/client.ts';
import type { LeakStatus } from '../../core/audit/leak.ts';
import { isZtvError } from '../../core/errors.ts';
import { describeProblem } from '../app/problems.ts';

export type LeakViewStatus = LeakStatus | 'not-protected' | 'failed';

export interface LeakField {
  /** A stable key (also the test hook `leak-<id>`). */
  readonly id: string;
  readonly label: string;
  readonly value: string;
}

export interface LeakView {
  readonly status: LeakViewStatus;
  readonly title: string;
  readonly explanation: string;
  readonly fields: readonly LeakField[];
  /** Why the trace is no evidence (forged, untraced), one sentence each. */
  readonly reasons: readonly string[];
}

/** The largest file the view reads (a multi-frame study object is far below it). */
export const MAX_LEAK_BYTES = 1024 * 1024 * 1024;

const field = (id: string, label: string, value: string | undefined): LeakField[] =>
  value === undefined || value === '' ? [] : [{ id, label, value }];

/** Break-glass as the auditor reads it: not used, or used and its review (pending or decided). */
export function breakGlassText(t: {
  readonly breakGlass: boolean;
  readonly review: string;
  readonly reviewer: string | null;
  readonly reviewedAt: string | null;
}): string {
  if (!t.breakGlass) return 'not used';
  if (t.review === 'pending' || !t.reviewer) return 'used — review pending';
  return `used — reviewed ${t.review} by ${t.reviewer}${t.reviewedAt ? ` at ${t.reviewedAt}` : ''}`;
}

export function describeLeak(report: LeakReport): LeakView {
  const e = report.examination;
  const provenance = [
    ...field('trace', 'Trace', e.traceId),
    ...field('traced-at', 'Traced', e.tracedAt),
    ...field('cloud', 'Traced by', e.cloud),
    ...field('producer', 'Sealed by', e.producer),
    {
      id: 'image',
      label: 'Image',
      value: e.imageIntact
        ? 'as sealed (pixels and header unaltered)'
        : 'ALTERED after sealing (the trace still says who obtained it)',
    },
  ];
  switch (report.status) {
    case 'resolved': {
      const t = report.resolution?.ticket;
      if (!t)
        return {
          status: 'unknown',
          title: 'Unknown trace',
          explanation: "The producer's log answered without a ticket for this trace.",
          fields: provenance,
          reasons: [],
        };
      return {
        status: 'resolved',
        title: `Obtained by ${t.requester}`,
        explanation:
          "The cloud's trace and the producer's seal verify against the pinned federation root; the producer's log names the ticket that carried this trace.",
        fields: [
          { id: 'requester', label: 'Requester', value: t.requester },
          ...field('hospital', 'Hospital', t.hospital),
          ...field('device', 'Device', t.device),
          { id: 'issued', label: 'Ticket issued', value: t.issuedAt },
          ...field('expires', 'Ticket valid until', t.expiresAt),
          { id: 'purpose', label: 'Purpose', value: t.purpose },
          { id: 'ticket', label: 'Ticket', value: t.tid },
          { id: 'rules', label: 'Allowed by', value: t.rules.join(', ') || '(no rule named)' },
          ...field('obligations', 'Obligations', t.obligations.join(', ')),
          { id: 'break-glass', label: 'Break-glass', value: breakGlassText(t) },
          ...field('patient', 'Patient (pseudonym)', t.patient),
          ...field('study', 'Study (reference)', t.study),
          ...provenance,
        ],
        reasons: [],
      };
    }
    case 'unknown':
      return {
        status: 'unknown',
        title: 'Unknown trace',
        explanation:
          'The trace is signed by the federation’s cloud, but no ticket of the producer carries it: a trace the producer never issued, which is itself a finding about the cloud.',
        fields: provenance,
        reasons: [],
      };
    case 'forged':
      return {
        status: 'forged',
        title: 'Forged trace',
        explanation:
          'The trace does not verify against the federation’s PKI: it is evidence against no one, and it was not looked up in any log.',
        fields: provenance,
        reasons: e.reasons,
      };
    case 'untraced':
      return {
        status: 'untraced',
        title: 'Never traced',
        explanation:
          'This protected image carries no trace: no cloud served it through a ticket (a copy taken before any consultation, e.g. from storage).',
        fields: provenance,
        reasons: e.reasons,
      };
  }
}

const NOT_PROTECTED = new Set(['not-dicom', 'truncated', 'unsupported', 'not-protected']);

/** A file that could not be traced: not a protected image, or a party that refused or did not answer. */
export function describeLeakFailure(e: unknown, file: string): LeakView {
  if (isZtvError(e) && (NOT_PROTECTED.has(e.code) || e.code === 'unsupported-version'))
    return {
      status: 'not-protected',
      title: e.code === 'unsupported-version' ? 'Unsupported container' : 'Not a protected image',
      explanation: `${e.message.replace(/[.\s]+$/, '')}. Only images protected by a producer of the federation carry a trace.`,
      fields: [{ id: 'file', label: 'File', value: file }],
      reasons: [],
    };
  const p = describeProblem(e, 'start');
  return {
    status: 'failed',
    title: p.kind === 'network' ? p.title : `The trace could not be resolved: ${p.title}`,
    explanation: p.detail,
    fields: [{ id: 'file', label: 'File', value: file }],
    reasons: [],
  };
}
