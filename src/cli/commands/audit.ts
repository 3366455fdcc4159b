/**
 * `ztv audit verify` and `ztv audit export`, for auditors. verify checks a party's hash chain, its
 * record signatures and signed checkpoints — read straight from its database (an SQLite file opened
 * read-only, or a PostgreSQL schema), or fetched whole through the services and verified here with
 * each party's certified key — against the witness's statement (fetched from the witness, never from
 * the party), and names every break: the record's sequence number and what failed (truncated,
 * rolled-back, forked, rewritten…). Exit 0 when every chain is intact and reaches the latest witnessed
 * checkpoint, 1 when any break is found, 2 when a chain shows no break but could not be compared with
 * the witness, 3 on failure, 64 on a usage error. export writes
 * the records (a database's whole chain, or the services' merged trail for a patient, a study, a
 * clinician or a ticket) as DICOM audit messages (PS3.15 A.5, one XML document per line) or CSV,
 * atomically: nothing is written unless the whole export succeeded.
 */
import { join } from 'node:path';
import { AUDITED_PARTIES, type AuditedParty } from '../../core/audit/client.ts';
import { toCsv } from '../../core/audit/csv.ts';
import { toDicomAudit } from '../../core/audit/dicom.ts';
import type { AuditRecord } from '../../core/audit/record.ts';
import { checkpointKeys, type TrailFilter } from '../../core/audit/trail.ts';
import {
  chainState,
  verifiedComplete,
  verifyChain,
  type ChainReport,
} from '../../core/audit/verify.ts';
import { fetchWitnessView, type WitnessLookup } from '../../core/audit/client.ts';
import { mergeViews } from '../../core/audit/witness.ts';
import { loadPkiDir } from '../../services/common/pki-dir.ts';
import { readStoredChain, type ChainSource } from '../../services/storage/audit-reader.ts';
import { EXIT, parse, UsageError, writeOutput } from '../common.ts';
import {
  connectAuditor,
  CONNECT_OPTIONS,
  CONNECT_USAGE,
  wantsServices,
  type AuditorConnection,
} from './audit-connect.ts';

const DB_OPTIONS = {
  db: { type: 'string' },
  'database-url': { type: 'string' },
  schema: { type: 'string' },
  data: { type: 'string' },
  party: { type: 'string' },
  pki: { type: 'string' },
  witness: { type: 'string' },
} as const;

const DB_USAGE =
  '(--db FILE.sqlite | --database-url URL --schema NAME | --data DIR --party NAME) [--pki DIR] [--witness URL]';

const VERIFY_USAGE = `ztv audit verify ${DB_USAGE} [--json]\n       ztv audit verify ${CONNECT_USAGE} [--producer URL] [--cloud URL] [--json]`;
const EXPORT_USAGE = `ztv audit export --format xml|csv --out FILE ${DB_USAGE}\n       ztv audit export --format xml|csv --out FILE --producer URL [--cloud URL] ${CONNECT_USAGE} [--patient ID] [--study UID] [--clinician ID] [--ticket TID] [--party NAME] [--site ID]`;

type Values = Record<string, string | boolean | undefined>;
const str = (v: Values, k: string): string | undefined =>
  typeof v[k] === 'string' && v[k] !== '' ? (v[k] as string) : undefined;

/** Where a party's chain is stored, and the PKI directory whose certificates sign its checkpoints. */
function dbSource(v: Values, usage: string): { src: ChainSource; party?: string; pki?: string } {
  const party = str(v, 'party');
  const data = str(v, 'data');
  if (str(v, 'db')) return { src: { file: str(v, 'db')! }, party, pki: str(v, 'pki') };
  if (str(v, 'database-url')) {
    if (!str(v, 'schema'))
      throw new UsageError(`--database-url needs --schema (e.g. ztv_producer)\nusage: ${usage}`);
    return {
      src: { url: str(v, 'database-url')!, schema: str(v, 'schema')! },
      party,
      pki: str(v, 'pki'),
    };
  }
  if (data) {
    if (!party || !['authority', 'producer', 'cloud', 'consumer'].includes(party))
      throw new UsageError(
        `--data needs --party authority|producer|cloud|consumer\nusage: ${usage}`,
      );
    const url = process.env.DATABASE_URL;
    const prefix = process.env.ZTV_DB_SCHEMA_PREFIX ?? 'ztv';
    return {
      src: url
        ? { url, schema: `${prefix}_${party}` }
        : { file: join(data, party, `${party}.sqlite`) },
      party,
      pki: str(v, 'pki') ?? process.env.ZTV_PKI ?? join(data, 'pki'),
    };
  }
  throw new UsageError(`say which database: ${DB_USAGE}\nusage: ${usage}`);
}

async function verifyDatabase(v: Values): Promise<ChainReport> {
  const { src, party, pki } = dbSource(v, VERIFY_USAGE);
  if (!pki)
    throw new UsageError(
      `give --pki DIR (the federation's PKI directory): checkpoint signatures are checked with the party's certificate\nusage: ${VERIFY_USAGE}`,
    );
  const witnessUrl = str(v, 'witness')?.replace(/\/+$/, '');
  if (witnessUrl && !/^https?:\/\/[^\s/]+/.test(witnessUrl))
    throw new UsageError(
      '--witness must be an http(s) URL (the consumer hospital relays the witness)',
    );
  const view = await loadPkiDir(pki);
  // The witness is asked before the database is read (the chain must reach what it had seen by
  // then) and after (checkpoints and conflicts the running party added meanwhile).
  const name = party ?? (await readStoredChain(src)).party;
  const ask = (): Promise<WitnessLookup> =>
    witnessUrl
      ? fetchWitnessView(witnessUrl, name, view)
      : Promise.resolve({ unavailable: 'no --witness URL was given' });
  const before = await ask();
  const chain = await readStoredChain(src, name);
  const after = await ask();
  return verifyChain(
    chain.party,
    chain.records,
    chain.checkpoints,
    checkpointKeys(view, chain.party),
    'unavailable' in before
      ? before
      : mergeViews(before, 'unavailable' in after ? undefined : after),
  );
}

const partiesOf = (v: Values): AuditedParty[] =>
  AUDITED_PARTIES.filter((p) => p === 'consumer' || str(v, p) !== undefined);

function describeReport(r: ChainReport): string {
  const head = `${r.party}: ${r.records} records, ${r.checkpoints} signed checkpoint(s): ${chainState(r)}`;
  return [head, ...r.breaks.map((b) => `  record ${b.seq}: ${b.kind}: ${b.detail}`)].join('\n');
}

async function withServices<T>(
  v: Values,
  usage: string,
  run: (c: AuditorConnection) => Promise<T>,
) {
  const conn = await connectAuditor(v, usage);
  try {
    return await run(conn);
  } finally {
    await conn.close();
  }
}

export async function auditVerify(args: string[]): Promise<number> {
  const { values } = parse(
    args,
    { ...DB_OPTIONS, ...CONNECT_OPTIONS, json: { type: 'boolean' } },
    VERIFY_USAGE,
  );
  let reports: { local: ChainReport; remote?: ChainReport }[];
  if (wantsServices(values)) {
    reports = await withServices(values, VERIFY_USAGE, async (c) => {
      const out = [];
      for (const p of partiesOf(values)) {
        const { local, remote } = await c.client.verifyChain(p);
        out.push({ local, remote });
      }
      return out;
    });
  } else reports = [{ local: await verifyDatabase(values) }];
  if (values.json) console.log(JSON.stringify(reports, null, 2));
  else
    for (const r of reports) {
      console.log(describeReport(r.local));
      if (r.remote && r.remote.ok !== r.local.ok)
        console.log(
          `  ${r.remote.party} says of itself: ${r.remote.ok ? 'intact' : `${r.remote.breaks.length} break(s)`} — it disagrees with this verification`,
        );
    }
  if (!reports.every((r) => r.local.ok)) return EXIT.tampered;
  return reports.every((r) => verifiedComplete(r.local)) ? EXIT.ok : EXIT.unverifiable;
}

export async function auditExport(args: string[]): Promise<number> {
  const { values } = parse(
    args,
    {
      ...DB_OPTIONS,
      ...CONNECT_OPTIONS,
      format: { type: 'string' },
      out: { type: 'string' },
      patient: { type: 'string' },
      study: { type: 'string' },
      clinician: { type: 'string' },
      ticket: { type: 'string' },
      site: { type: 'string' },
    },
    EXPORT_USAGE,
  );
  const format = str(values, 'format');
  if (format !== 'xml' && format !== 'csv')
    throw new UsageError(`--format must be xml or csv\nusage: ${EXPORT_USAGE}`);
  const out = str(values, 'out');
  if (!out) throw new UsageError(`--out FILE is required\nusage: ${EXPORT_USAGE}`);
  let records: AuditRecord[];
  if (wantsServices(values)) {
    const ticket = str(values, 'ticket');
    if (ticket && !/^[0-9a-f]{32}$/.test(ticket))
      throw new UsageError('--ticket is a ticket id (32 hex digits)');
    const filter = {
      ...(str(values, 'patient') ? { patientId: str(values, 'patient')! } : {}),
      ...(str(values, 'study') ? { studyUid: str(values, 'study')! } : {}),
      ...(str(values, 'clinician') ? { clinician: str(values, 'clinician')! } : {}),
      ...(ticket ? { tickets: [ticket] } : {}),
    };
    const party = str(values, 'party');
    if (party && !AUDITED_PARTIES.includes(party as AuditedParty))
      throw new UsageError('--party must be producer, cloud or consumer');
    records = await withServices(values, EXPORT_USAGE, async (c) => {
      if (party) {
        const { patientId: _p, studyUid: _s, ...f } = filter;
        const whole: TrailFilter = Object.keys(f).length ? f : { chain: true };
        return [...(await c.client.trail(party as AuditedParty, whole)).records];
      }
      if (Object.keys(filter).length === 0)
        throw new UsageError(
          `through the services, name --patient, --study, --clinician or --ticket (or --party for a whole chain)\nusage: ${EXPORT_USAGE}`,
        );
      return (await c.client.mergedTrail(filter)).entries.map((e) => e.record);
    });
  } else {
    const { src, party } = dbSource(values, EXPORT_USAGE);
    records = (await readStoredChain(src, party)).records;
  }
  const site = str(values, 'site');
  writeOutput(out, format === 'xml' ? toDicomAudit(records, site ? { site } : {}) : toCsv(records));
  console.log(
    `wrote ${records.length} record(s) to ${out} as ${format === 'xml' ? 'DICOM audit messages' : 'CSV'}`,
  );
  return EXIT.ok;
}

export async function auditCommand(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === 'verify') return auditVerify(rest);
  if (sub === 'export') return auditExport(rest);
  if (sub === '--help' || sub === '-h')
    return (
      console.log(`usage: ${VERIFY_USAGE}\n       ${EXPORT_USAGE.replace(/\n\s+/g, '\n       ')}`),
      EXIT.ok
    );
  throw new UsageError(
    `unknown audit command ${sub ?? ''}\nusage: ${VERIFY_USAGE}\n       ${EXPORT_USAGE}`,
  );
}
