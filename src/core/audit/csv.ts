/**
 * Audit records as CSV (RFC 4180: comma separated, CRLF line ends, fields quoted when they hold a
 * comma, quote or line break), one row per record with the chain fields, for spreadsheets and SIEM
 * imports; details as exported (./redact.ts), the paths replaced listed in the last column. A cell
 * that a spreadsheet would run as a formula (=, +, -, @, tab, CR) is prefixed with a quote mark, so an
 * exported trail cannot inject formulas (OWASP "CSV injection").
 */
import { canonicalJson, EVENTS, type AuditRecord } from './record.ts';
import { exportable } from './redact.ts';

export const CSV_COLUMNS = [
  'party',
  'seq',
  'time',
  'event',
  'event_name',
  'subtype',
  'action',
  'outcome',
  'actor',
  'actor_role',
  'actor_organisation',
  'actor_device',
  'objects',
  'details',
  'prev',
  'hash',
  'redacted',
] as const;

const FORMULA = /^[=+\-@\t\r]/;

export function csvCell(v: string): string {
  const safe = FORMULA.test(v) ? `'${v}` : v;
  return /[",\r\n]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}

export function csvRow(r: AuditRecord): string[] {
  const out = exportable(r.details);
  return [
    r.party,
    String(r.seq),
    r.time,
    r.event,
    EVENTS[r.event] ?? '',
    r.subtype,
    r.action,
    String(r.outcome),
    r.actor.id,
    r.actor.role ?? '',
    r.actor.organisation ?? '',
    r.actor.device ?? '',
    r.objects.map((o) => `${o.type}:${o.id}`).join(' '),
    canonicalJson(out.details),
    r.prev,
    r.hash,
    out.redacted.join(' '),
  ];
}

/** A header line and one line per record. */
export function toCsv(records: readonly AuditRecord[]): string {
  return [CSV_COLUMNS as readonly string[], ...records.map(csvRow)]
    .map((row) => `${row.map(csvCell).join(',')}\r\n`)
    .join('');
}

/** Parses RFC 4180 text back into rows (for tests and for tools that re-import an export). */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else cell += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') {
      row.push(cell);
      cell = '';
    } else if (ch === '\r' && text[i + 1] === '\n') {
      row.push(cell);
      rows.push(row);
      row = [];
      cell = '';
      i++;
    } else cell += ch;
  }
  if (cell !== '' || row.length) {
    row.push(cell);
    rows.push(row);
  }
  return rows;
}
