/**
 * `ztv trace-leak FILE --producer URL --consumer URL --user AUDITOR …`: who obtained a leaked image.
 * Without any image key it reads the container, verifies the producer's seal and the cloud's trace
 * against the federation's PKI, and — only if the trace verifies — resolves it through the producer's
 * log as an auditor (the resolution is itself logged): requester, hospital, device, time, purpose,
 * ticket, the rules that allowed it, break-glass or not. Exit 0 resolved, 1 forged trace, 4 a verified
 * trace no log knows, 5 an image that was never traced; 3 on failure, 64 on a usage error.
 */
import type { LeakReport } from '../../core/audit/client.ts';
import { inspectProtected } from '../../core/protect/inspect.ts';
import { EXIT, parse, readInput, UsageError } from '../common.ts';
import { connectAuditor, CONNECT_OPTIONS, CONNECT_USAGE } from './audit-connect.ts';

export const TRACE_EXIT = { resolved: EXIT.ok, forged: 1, unknown: 4, untraced: 5 } as const;

const USAGE = `ztv trace-leak FILE --producer URL ${CONNECT_USAGE} [--json]`;

function describe(file: string, r: LeakReport): string {
  const e = r.examination;
  const lines: string[] = [];
  const trace = e.traceId ? `trace ${e.traceId}` : 'no trace';
  if (r.status === 'forged') {
    lines.push(`${file}: FORGED ${trace} — it is no evidence against anyone`);
    for (const reason of e.reasons) lines.push(`  why         ${reason}`);
  } else if (r.status === 'untraced') {
    lines.push(`${file}: not traced — ${e.reasons.join('; ')}`);
  } else if (r.status === 'unknown') {
    lines.push(
      `${file}: UNKNOWN ${trace}: signed by the cloud, but no ticket of the producer has it`,
    );
    if (e.tracedAt) lines.push(`  traced at   ${e.tracedAt}`);
  } else {
    const t = r.resolution!.ticket!;
    lines.push(`${file}: ${trace} resolved by the producer's log`);
    lines.push(`  requester   ${t.requester}`);
    lines.push(`  hospital    ${t.hospital}`);
    lines.push(`  device      ${t.device}`);
    lines.push(`  time        ticket issued ${t.issuedAt}; image traced ${e.tracedAt ?? '?'}`);
    lines.push(`  purpose     ${t.purpose}`);
    lines.push(`  ticket      ${t.tid}`);
    lines.push(`  rules       ${t.rules.join(', ') || '(none)'}`);
    lines.push(
      `  break-glass ${t.breakGlass ? `yes (review: ${t.review}${t.reviewer ? ` by ${t.reviewer}` : ''})` : 'no'}`,
    );
    lines.push(`  patient     ${t.patient} (pseudonym)`);
  }
  if (e.cloud) lines.push(`  traced by   ${e.cloud}`);
  if (e.producer) lines.push(`  sealed by   ${e.producer}`);
  lines.push(
    `  image       ${e.imageIntact ? 'as sealed (pixels and header unaltered)' : 'ALTERED after sealing'}`,
  );
  return lines.join('\n');
}

export async function traceLeakCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(
    args,
    { ...CONNECT_OPTIONS, json: { type: 'boolean' } },
    USAGE,
  );
  if (positionals.length !== 1) throw new UsageError(`expected one image file\nusage: ${USAGE}`);
  if (typeof values.producer !== 'string' || !values.producer)
    throw new UsageError(`--producer is required\nusage: ${USAGE}`);
  const file = positionals[0]!;
  const bytes = readInput(file, 'image');
  inspectProtected(bytes, file); // not DICOM, not protected: say so before signing in anywhere
  const conn = await connectAuditor(values, USAGE);
  try {
    const report = await conn.client.traceLeak(bytes, file);
    console.log(values.json ? JSON.stringify(report, null, 2) : describe(file, report));
    return TRACE_EXIT[report.status];
  } finally {
    await conn.close();
  }
}
