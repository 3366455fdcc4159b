// DICOM audit messages and CSV from real audit records: every event and subtype the services log
// becomes an AuditMessage that libxml2 (xmllint-wasm) validates against the PS3.15 A.5.1 schema we
// ship; a message the schema forbids is refused, so the validation is not vacuous; CSV round-trips and
// cannot inject spreadsheet formulas; the exports carry pseudonyms only.
import { describe, expect, it } from 'vitest';
import { toAuditMessage, toDicomAudit } from './dicom.ts';
import { CSV_COLUMNS, parseCsv, toCsv } from './csv.ts';
import { exportable } from './redact.ts';
import { studyRef } from './trail.ts';
import { GENESIS, nextRecord, recordHash, type AuditEntry, type AuditRecord } from './record.ts';
import { validateAuditMessages } from '../../../test/audit-schema.ts';

const validate = (xml: string) => validateAuditMessages([xml]);

const PATIENT = 'a3f1c2d4e5f60718293a4b5c6d7e8f90';
const STUDY = '0f1e2d3c4b5a69788796a5b4c3d2e1f0';
const STUDY_UID = '1.2.840.113619.2.55.3.604688119.969.1268071029.320';
const TICKET = '5e5b9d2a0c4f47d1b9e3a6c8d0f2e4a6';
const IMAGE = '3b1f6f0e-7c2d-4a55-9b1e-2f6d8c0a9e11';
const clinician = {
  id: 'dr.bob',
  role: 'physician',
  organisation: 'consumer',
  device: 'ab'.repeat(32),
};

// The entries the parties append (src/services/*/app.ts, audit.ts), one of each kind.
const ENTRIES: AuditEntry[] = [
  {
    event: '110106',
    subtype: 'outsourcing',
    action: 'C',
    outcome: 0,
    actor: { id: 'producer' },
    objects: [{ type: 'image', id: IMAGE }],
    details: { cloud: 'cloud' },
  },
  {
    event: '110112',
    subtype: 'request-logged',
    action: 'R',
    outcome: 0,
    actor: clinician,
    objects: [{ type: 'patient', id: PATIENT }],
    details: { operation: 'consult', purpose: 'treatment', emergency: false },
  },
  {
    event: '110112',
    subtype: 'policy-decision',
    action: 'R',
    outcome: 4,
    actor: clinician,
    objects: [
      { type: 'patient', id: PATIENT },
      { type: 'study', id: STUDY },
    ],
    details: {
      decision: {
        decision: 'deny',
        rules: ['NO-MARKETING'],
        errors: [],
        request: { principal: 'dr.bob', resource: `study:${STUDY_UID}` },
      },
    },
  },
  {
    event: '110103',
    subtype: 'ticket-issued-break-glass',
    action: 'C',
    outcome: 0,
    actor: clinician,
    objects: [
      { type: 'ticket', id: TICKET },
      { type: 'patient', id: PATIENT },
      { type: 'study', id: STUDY },
    ],
    details: { images: 3, rules: ['BREAK-GLASS'], obligationsPending: ['break-glass-review'] },
  },
  {
    event: '110103',
    subtype: 'trace-inserted',
    action: 'R',
    outcome: 0,
    actor: { id: 'dr.bob', device: clinician.device },
    objects: [
      { type: 'ticket', id: TICKET },
      { type: 'image', id: IMAGE },
    ],
    details: { traces: ['cd'.repeat(32)], producer: 'producer', rules: ['CLOUD-RELEASE'] },
  },
  {
    event: '110107',
    subtype: 'outsourcing',
    action: 'C',
    outcome: 0,
    actor: { id: 'producer', organisation: 'producer' },
    objects: [{ type: 'image', id: IMAGE }],
    details: { size: 1234 },
  },
  {
    event: '110113',
    subtype: 'ticket-refused',
    action: 'E',
    outcome: 8,
    actor: { id: 'dr.eve', device: 'cd'.repeat(32) },
    objects: [],
    details: { reason: 'the ticket was already redeemed (replay) & "quoted" <tag>' },
  },
  {
    event: '110113',
    subtype: 'session-refused',
    action: 'E',
    outcome: 8,
    actor: { id: 'unknown' },
    objects: [],
    details: { reason: 'bad-certificate', message: 'the client certificate is refused' },
  },
  {
    event: '110113',
    subtype: 'device-revoked',
    action: 'U',
    outcome: 0,
    actor: { id: 'dr.bob' },
    objects: [{ type: 'certificate', id: '1a2b3c' }],
    details: {},
  },
  {
    event: '110114',
    subtype: 'login',
    action: 'E',
    outcome: 0,
    actor: { id: 'auditor.dave' },
    objects: [],
    details: {},
  },
  {
    event: '110114',
    subtype: 'login-failed',
    action: 'E',
    outcome: 4,
    actor: { id: 'unknown' },
    objects: [],
    details: {},
  },
  {
    event: '110101',
    subtype: 'trace-resolved',
    action: 'R',
    outcome: 0,
    actor: { id: 'auditor.dave', role: 'auditor', organisation: 'consumer' },
    objects: [{ type: 'ticket', id: TICKET }],
    details: { purpose: 'audit', rules: ['AUDIT'], trace: 'cd'.repeat(32), known: true },
  },
  {
    event: '110113',
    subtype: 'break-glass-reviewed',
    action: 'U',
    outcome: 0,
    actor: { id: 'auditor.dave', role: 'auditor' },
    objects: [{ type: 'ticket', id: TICKET }],
    details: { outcome: 'justified', requester: 'dr.bob', obligation: 'break-glass-review' },
  },
];

function chain(entries: readonly AuditEntry[], party = 'producer'): AuditRecord[] {
  const out: AuditRecord[] = [];
  let head = { seq: 0, hash: GENESIS };
  for (const [i, e] of entries.entries()) {
    const r = nextRecord(e, head, party, new Date(Date.UTC(2026, 2, 3, 9, 0, i, 123)));
    out.push(r);
    head = r;
  }
  return out;
}

describe('DICOM audit messages (PS3.15 A.5)', () => {
  const records = chain(ENTRIES);

  it('every kind of record the parties log validates against the shipped A.5.1 schema', async () => {
    const lines = toDicomAudit(records, { site: 'ztv-federation' }).trimEnd().split('\n');
    expect(lines).toHaveLength(records.length);
    for (const [i, xml] of lines.entries()) {
      const r = await validate(xml);
      expect(r.errors, `${records[i]!.subtype}: ${r.rawOutput}`).toEqual([]);
      expect(r.valid).toBe(true);
    }
  });

  it('maps the record: event, DCM subtype codes, participants, objects with their type codes', () => {
    const bg = toAuditMessage(records[3]!);
    expect(bg).toContain(
      '<EventIdentification EventActionCode="C" EventDateTime="2026-03-03T09:00:03.123Z" EventOutcomeIndicator="0">',
    );
    expect(bg).toContain(
      '<EventID csd-code="110103" codeSystemName="DCM" originalText="DICOM Instances Accessed"/>',
    );
    expect(bg).toContain('csd-code="110127" codeSystemName="DCM"'); // Emergency Override Started
    expect(bg).toContain('csd-code="ticket-issued-break-glass" codeSystemName="99ZTV"');
    expect(bg).toMatch(
      /<ActiveParticipant UserID="dr.bob" AlternativeUserID="(ab)+" UserIsRequestor="true">/,
    );
    expect(bg).toContain('<ActiveParticipant UserID="producer" UserIsRequestor="false">');
    expect(bg).toContain(
      `<ParticipantObjectIdentification ParticipantObjectID="${PATIENT}" ParticipantObjectTypeCode="1" ParticipantObjectTypeCodeRole="1"><ParticipantObjectIDTypeCode csd-code="2" codeSystemName="RFC-3881" originalText="Patient Number"/>`,
    );
    const login = toAuditMessage(records[9]!);
    expect(login).toContain('<EventID csd-code="110114"');
    expect(login).toContain('csd-code="110122" codeSystemName="DCM" originalText="Login"');
    const alert = toAuditMessage(records[6]!);
    expect(alert).toContain('EventOutcomeIndicator="8"');
    expect(alert).toContain(
      '<EventOutcomeDescription>the ticket was already redeemed (replay) &amp; &quot;quoted&quot; &lt;tag&gt;</EventOutcomeDescription>',
    );
    const used = toAuditMessage(records[11]!);
    expect(used).toContain('csd-code="110101" codeSystemName="DCM" originalText="Audit Log Used"');
  });

  it('carries the chain: seq, hash and previous hash, and the details that hash covers', () => {
    const xml = toAuditMessage(records[4]!);
    const detail = (type: string) =>
      atob(new RegExp(`<ParticipantObjectDetail type="${type}" value="([^"]+)"/>`).exec(xml)![1]!);
    expect(detail('seq')).toBe('5');
    expect(detail('hash')).toBe(records[4]!.hash);
    expect(detail('prev')).toBe(records[3]!.hash);
    const { hash: _h, ...rest } = records[4]!;
    expect(recordHash({ ...rest, details: JSON.parse(detail('details')) })).toBe(records[4]!.hash);
  });

  it('the schema refuses what A.5.1 forbids (so the validation above means something)', async () => {
    const good = toAuditMessage(records[1]!);
    for (const bad of [
      good.replace('EventOutcomeIndicator="0"', 'EventOutcomeIndicator="3"'),
      good.replace('EventActionCode="R"', 'EventActionCode="X"'),
      good.replace(/<AuditSourceIdentification[^]*?<\/AuditSourceIdentification>/, ''),
      good.replace(/ originalText="Query"/, ''),
      good.replace(/<ParticipantObjectName>[^<]*<\/ParticipantObjectName>/, ''),
      good.replace('EventDateTime="2026-03-03T09:00:01.123Z"', 'EventDateTime="yesterday"'),
    ]) {
      expect(bad).not.toBe(good);
      expect((await validate(bad)).valid).toBe(false);
    }
  });
});

describe('what an export may not carry', () => {
  const records = chain(ENTRIES);

  it("a decision's resource (a Study Instance UID) leaves as its reference, and says so", async () => {
    const xml = toAuditMessage(records[2]!);
    expect(xml).not.toContain(STUDY_UID);
    const detail = (type: string) =>
      atob(new RegExp(`<ParticipantObjectDetail type="${type}" value="([^"]+)"/>`).exec(xml)![1]!);
    expect(JSON.parse(detail('details')).decision.request.resource).toBe(
      `study-ref:${studyRef(STUDY_UID)}`,
    );
    expect(detail('redacted')).toBe('details.decision.request.resource');
    expect((await validate(xml)).valid).toBe(true);
    const csv = toCsv(records);
    expect(csv).not.toContain(STUDY_UID);
    expect(parseCsv(csv)[3]![CSV_COLUMNS.indexOf('redacted')]).toBe(
      'details.decision.request.resource',
    );
    const patient = exportable({ decision: { request: { resource: 'patient:LIDC-IDRI-0314' } } });
    expect(JSON.stringify(patient.details)).not.toContain('LIDC');
    // The record in the chain is untouched: only what leaves is replaced.
    expect(JSON.stringify(records[2]!.details)).toContain(STUDY_UID);
  });
});

describe('CSV export', () => {
  const records = chain(ENTRIES, 'cloud');

  it('one row per record under a header, RFC 4180 quoting that round-trips', () => {
    const csv = toCsv(records);
    expect(csv.endsWith('\r\n')).toBe(true);
    const rows = parseCsv(csv);
    expect(rows[0]).toEqual([...CSV_COLUMNS]);
    expect(rows).toHaveLength(records.length + 1);
    const refused = rows[7]!;
    expect(refused[CSV_COLUMNS.indexOf('subtype')]).toBe('ticket-refused');
    expect(JSON.parse(refused[CSV_COLUMNS.indexOf('details')]!)).toEqual(records[6]!.details);
    expect(rows[5]![CSV_COLUMNS.indexOf('objects')]).toBe(`ticket:${TICKET} image:${IMAGE}`);
    expect(rows[4]![CSV_COLUMNS.indexOf('hash')]).toBe(records[3]!.hash);
  });

  it('neutralises cells a spreadsheet would run as formulas', () => {
    const [r] = chain([
      { ...ENTRIES[9]!, actor: { id: '=HYPERLINK("http://x","y")' } },
      { ...ENTRIES[9]!, actor: { id: '-2+3' } },
    ]);
    const row = parseCsv(toCsv([r!]))[1]!;
    expect(row[CSV_COLUMNS.indexOf('actor')]).toBe(`'=HYPERLINK("http://x","y")`);
  });
});
