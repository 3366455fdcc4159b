/**
 * Audit records as DICOM audit messages (PS3.15 A.5, IHE ATNA): one `AuditMessage` per record, valid
 * against the standard's schema (schemas/dicom-audit-message.rnc, A.5.1.1). The event comes from the
 * record's DCM event id, refined by an EventTypeCode (a DCM code where PS3.16 has one, and always the
 * platform's own subtype in the private `99ZTV` coding scheme); the requester and the reporting party are
 * the active participants; every object of the record is a participant object with its type codes; the
 * record itself (party, seq, hash, previous hash, canonical details) travels as a participant object
 * so that an exported message can be checked against the chain it came from. Records are pseudonymous
 * (patients as keyed pseudonyms, studies as digests of their UID); identifiers that policy decisions
 * carry in their details are replaced on the way out (./redact.ts), and the replacement is listed.
 */
import { toBase64, utf8 } from '../bytes.ts';
import { canonicalJson, EVENTS, type AuditObject, type AuditRecord } from './record.ts';
import { exportable } from './redact.ts';

/** The DICOM coding scheme designator, and the platform's private one (PS3.16 8.2: "99" prefix). */
export const DCM = 'DCM';
export const ZTV_SCHEME = '99ZTV';

interface Code {
  readonly code: string;
  readonly scheme: string;
  readonly meaning: string;
}

/** DCM event type codes (PS3.16 CID 401 and CID 403) for the platform subtypes that have one. */
const DCM_TYPES: Readonly<Record<string, Code>> = {
  login: { code: '110122', scheme: DCM, meaning: 'Login' },
  'login-failed': { code: '110122', scheme: DCM, meaning: 'Login' },
  logout: { code: '110123', scheme: DCM, meaning: 'Logout' },
  'session-refused': { code: '110126', scheme: DCM, meaning: 'Node Authentication' },
  'association-refused': { code: '110126', scheme: DCM, meaning: 'Node Authentication' },
  'session-stale': { code: '110126', scheme: DCM, meaning: 'Node Authentication' },
  'ticket-issued-break-glass': {
    code: '110127',
    scheme: DCM,
    meaning: 'Emergency Override Started',
  },
  'ticket-refused': { code: '110132', scheme: DCM, meaning: 'Use of Restricted Function' },
  'ticket-replayed': { code: '110132', scheme: DCM, meaning: 'Use of Restricted Function' },
  'redemption-denied': { code: '110132', scheme: DCM, meaning: 'Use of Restricted Function' },
  'release-denied': { code: '110132', scheme: DCM, meaning: 'Use of Restricted Function' },
  'upload-refused': { code: '110132', scheme: DCM, meaning: 'Use of Restricted Function' },
  'audit-access-denied': { code: '110132', scheme: DCM, meaning: 'Use of Restricted Function' },
  'device-revoked': { code: '110137', scheme: DCM, meaning: 'User Security Attributes Changed' },
};

/** How each kind of object of a record is described (PS3.15 A.5.2, RFC 3881 5.5). */
const OBJECT_CODES: Readonly<
  Record<AuditObject['type'], { type: string; role?: string; id: Code; name: string }>
> = {
  // A patient is a person in the patient role; its id is the producer's keyed pseudonym, never the
  // hospital's patient number, so the name is a pseudonym too.
  patient: {
    type: '1',
    role: '1',
    id: { code: '2', scheme: 'RFC-3881', meaning: 'Patient Number' },
    name: 'pseudonymous patient',
  },
  study: {
    type: '2',
    role: '3',
    id: {
      code: 'study-ref',
      scheme: ZTV_SCHEME,
      meaning: 'Study reference (SHA-256 of the Study Instance UID)',
    },
    name: 'study',
  },
  series: {
    type: '2',
    role: '3',
    id: { code: 'series-ref', scheme: ZTV_SCHEME, meaning: 'Series reference' },
    name: 'series',
  },
  image: {
    type: '2',
    role: '4',
    id: { code: 'cloud-image-id', scheme: ZTV_SCHEME, meaning: 'Cloud image identifier' },
    name: 'protected DICOM instance',
  },
  ticket: {
    type: '2',
    role: '13',
    id: { code: 'ticket-id', scheme: ZTV_SCHEME, meaning: 'Blind ticket identifier' },
    name: 'blind ticket',
  },
  certificate: {
    type: '2',
    role: '13',
    id: { code: 'certificate-serial', scheme: ZTV_SCHEME, meaning: 'X.509 certificate serial' },
    name: 'certificate',
  },
  policy: {
    type: '2',
    role: '13',
    id: { code: 'policy-id', scheme: ZTV_SCHEME, meaning: 'Policy identifier' },
    name: 'policy',
  },
  session: {
    type: '2',
    role: '4',
    id: { code: 'session-id', scheme: ZTV_SCHEME, meaning: 'Session identifier' },
    name: 'session',
  },
  record: {
    type: '2',
    role: '13',
    id: { code: 'audit-record', scheme: ZTV_SCHEME, meaning: 'Audit record' },
    name: 'audit record',
  },
};

/** Characters XML 1.0 cannot carry at all; replaced so that a message always parses. */
// eslint-disable-next-line no-control-regex
const NOT_XML = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g;

export const xmlEscape = (s: string): string =>
  s
    .replace(NOT_XML, '\ufffd')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/\r/g, '&#13;')
    .replace(/\n/g, '&#10;')
    .replace(/\t/g, '&#9;');

type Attrs = Readonly<Record<string, string | undefined>>;

function el(name: string, attrs: Attrs, children: readonly string[] | string = []): string {
  const a = Object.entries(attrs)
    .filter((e): e is [string, string] => e[1] !== undefined)
    .map(([k, v]) => ` ${k}="${xmlEscape(v)}"`)
    .join('');
  const body = typeof children === 'string' ? xmlEscape(children) : children.join('');
  return body ? `<${name}${a}>${body}</${name}>` : `<${name}${a}/>`;
}

const coded = (name: string, c: Code): string =>
  el(name, { 'csd-code': c.code, codeSystemName: c.scheme, originalText: c.meaning });

const detail = (type: string, value: string): string =>
  el('ParticipantObjectDetail', { type, value: toBase64(utf8(value)) });

/** A short sentence for EventOutcomeDescription, from what failed records carry. */
function outcomeDescription(r: AuditRecord): string | undefined {
  if (r.outcome === 0) return undefined;
  const d = r.details as {
    reason?: unknown;
    message?: unknown;
    errors?: unknown;
    decision?: { decision?: unknown; rules?: unknown; errors?: unknown };
  };
  const parts: string[] = [];
  if (typeof d.reason === 'string') parts.push(d.reason);
  if (typeof d.message === 'string') parts.push(d.message);
  const errors = Array.isArray(d.errors) ? d.errors : d.decision?.errors;
  if (Array.isArray(errors))
    parts.push(...errors.filter((e): e is string => typeof e === 'string'));
  if (d.decision?.decision === 'deny' && Array.isArray(d.decision.rules) && d.decision.rules.length)
    parts.push(`denied by ${d.decision.rules.join(', ')}`);
  return parts.length ? parts.join('; ').slice(0, 1000) : `${r.subtype} (outcome ${r.outcome})`;
}

/** The subtype as a private code, and the DCM code when PS3.16 has one. */
export function eventTypeCodes(r: Pick<AuditRecord, 'subtype'>): Code[] {
  const own = { code: r.subtype, scheme: ZTV_SCHEME, meaning: r.subtype.replace(/-/g, ' ') };
  const dcm = DCM_TYPES[r.subtype];
  return dcm ? [dcm, own] : [own];
}

export interface DicomExportOptions {
  /** AuditEnterpriseSiteID: the federation or hospital group the parties belong to. */
  readonly site?: string;
}

/** One record as a PS3.15 A.5 AuditMessage (a complete XML document on one line). */
export function toAuditMessage(r: AuditRecord, opts: DicomExportOptions = {}): string {
  const event = el(
    'EventIdentification',
    {
      EventActionCode: r.action,
      EventDateTime: r.time,
      EventOutcomeIndicator: String(r.outcome),
    },
    [
      coded('EventID', { code: r.event, scheme: DCM, meaning: EVENTS[r.event] }),
      ...eventTypeCodes(r).map((c) => coded('EventTypeCode', c)),
      ...((d) => (d ? [el('EventOutcomeDescription', {}, d)] : []))(outcomeDescription(r)),
    ],
  );
  // The person (or party) who acted, then the party that reports the event. A party acting on its own
  // (outsourcing) is both: it appears once, as requester.
  const actorIsParty = r.actor.id === r.party;
  const participants = [
    el(
      'ActiveParticipant',
      {
        UserID: r.actor.id,
        AlternativeUserID: r.actor.device,
        UserIsRequestor: 'true',
      },
      r.actor.role
        ? [
            coded('RoleIDCode', {
              code: r.actor.role,
              scheme: ZTV_SCHEME,
              meaning: `structural role ${r.actor.role}`,
            }),
          ]
        : [],
    ),
    ...(actorIsParty
      ? []
      : [
          el('ActiveParticipant', { UserID: r.party, UserIsRequestor: 'false' }, [
            coded('RoleIDCode', { code: '110150', scheme: DCM, meaning: 'Application' }),
          ]),
        ]),
  ];
  const source = el(
    'AuditSourceIdentification',
    { AuditEnterpriseSiteID: opts.site, AuditSourceID: r.party },
    [
      el('AuditSourceTypeCode', {
        'csd-code': '4',
        codeSystemName: 'RFC-3881',
        originalText: 'Application Server process or thread',
      }),
    ],
  );
  const objects = r.objects.map((o) => {
    const c = OBJECT_CODES[o.type];
    return el(
      'ParticipantObjectIdentification',
      {
        ParticipantObjectID: o.id,
        ParticipantObjectTypeCode: c.type,
        ParticipantObjectTypeCodeRole: c.role,
      },
      [
        coded('ParticipantObjectIDTypeCode', c.id),
        el('ParticipantObjectName', {}, o.type === 'patient' ? o.id : c.name),
      ],
    );
  });
  const organisation = r.actor.organisation
    ? [
        el(
          'ParticipantObjectIdentification',
          { ParticipantObjectID: r.actor.organisation, ParticipantObjectTypeCode: '3' },
          [
            coded('ParticipantObjectIDTypeCode', {
              code: 'organisation',
              scheme: ZTV_SCHEME,
              meaning: "Requester's organisation (trust-group member)",
            }),
            el('ParticipantObjectName', {}, r.actor.organisation),
          ],
        ),
      ]
    : [];
  const out = exportable(r.details);
  const chain = el(
    'ParticipantObjectIdentification',
    {
      ParticipantObjectID: `${r.party}:${r.seq}`,
      ParticipantObjectTypeCode: '2',
      ParticipantObjectTypeCodeRole: '13',
    },
    [
      coded('ParticipantObjectIDTypeCode', OBJECT_CODES.record.id),
      el('ParticipantObjectName', {}, r.hash),
      detail('seq', String(r.seq)),
      detail('hash', r.hash),
      detail('prev', r.prev),
      detail('details', canonicalJson(out.details)),
      ...(out.redacted.length ? [detail('redacted', out.redacted.join(' '))] : []),
    ],
  );
  return `<?xml version="1.0" encoding="UTF-8"?>${el('AuditMessage', {}, [
    event,
    ...participants,
    source,
    ...objects,
    ...organisation,
    chain,
  ])}`;
}

/**
 * A selection of records as DICOM audit messages, one complete XML document per line (the way a
 * syslog transport, RFC 5425, carries them one per frame): split on newlines to validate each.
 */
export function toDicomAudit(
  records: readonly AuditRecord[],
  opts: DicomExportOptions = {},
): string {
  return records.map((r) => `${toAuditMessage(r, opts)}\n`).join('');
}
