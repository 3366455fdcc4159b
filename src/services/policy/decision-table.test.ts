// The decision table of docs/policy.md, run through the real engine as the services set it up: the
// demo policies signed with a demo PKI and loaded by `loadPolicyEngine` (signatures verified), the
// services' resolvers over that PKI and trust group (hospital keys for role assignments, device
// certificate chains for delegations), the consumer hospital's real directory over HTTP for
// separation of duty per person, the producer's revocation table. Each row of the table in the docs
// names its request; the expected decision, deciding rules, obligations and the engine's words come
// from the docs themselves, so the table there is exactly what is tested here.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTestDatabase, type TestDatabase } from '../../../test/databases.ts';
import { REPO_ROOT } from '../../../test/samples.ts';
import { randomBytes, toBase64 } from '../../core/bytes.ts';
import {
  generateKeyPairPem,
  signingKeyFromCryptoKeys,
  signingKeyFromPem,
  type SigningKey,
} from '../../core/crypto/keys.ts';
import { createDemoPki, type DemoPki } from '../../core/pki/demo.ts';
import { generateEncryptionKeys, generateSigningKeys, issueDevice } from '../../core/pki/issue.ts';
import { OID, type StructuralRole } from '../../core/pki/oids.ts';
import { thumbprint } from '../../core/pki/validate.ts';
import type { X509Certificate } from '../../core/pki/x509.ts';
import {
  issueDelegation,
  issueRoleAssignment,
  verifyDirectoryEntry,
  type Delegation,
  type RoleAssignment,
} from '../../core/policy/statements.ts';
import { loadPkiDir, writePkiDir } from '../common/pki-dir.ts';
import { hashSecret } from '../common/secrets.ts';
import { SessionOperations, type OperationContext } from '../common/session.ts';
import { LiveTrust } from '../common/trust.ts';
import {
  addClinician,
  buildConsumer,
  consumerMigrations,
  type ConsumerTables,
} from '../consumer/app.ts';
import { producerMigrations, type ProducerTables } from '../producer/app.ts';
import { revocationCheck, revocationPlugin } from '../producer/revocation.ts';
import { AuditStore } from '../storage/audit-store.ts';
import type { PolicyEngine, AccessRequest, DecisionRecord } from './engine.ts';
import { signDemoPolicies } from './files.ts';
import { loadPolicyEngine } from './load.ts';
import { clinicianResolver, issuerResolver } from './resolvers.ts';

const PD = OID.domainProducer;
const FD = OID.domainFederation;
const DAY = new Date('2026-11-25T10:00:00Z'); // 11:00 in Paris
const NIGHT = new Date('2026-11-25T23:30:00Z'); // 00:30 in Paris
const HOUR = 3600_000;
const JUSTIFIED = 'unconscious patient, suspected intracranial bleed';

/** The people of the table: their account's role, and the roles of their devices. */
const PEOPLE: Record<string, { role: StructuralRole; devices?: StructuralRole[]; active?: 0 }> = {
  'dr.alice': { role: 'radiologist' },
  'dr.bob': { role: 'physician' },
  'dr.carl': { role: 'physician' },
  'dr.dora': { role: 'physician' },
  'dr.eve': { role: 'physician' },
  'dr.rita': { role: 'radiologist' },
  'nurse.carol': { role: 'nurse' },
  'nurse.nina': { role: 'nurse' },
  'admin.erin': { role: 'administrative' },
  'auditor.dave': { role: 'auditor' },
  // One person, two devices: certified as auditor before becoming a physician, never revoked.
  'dr.frank': { role: 'physician', devices: ['physician', 'auditor'] },
  // An account the hospital has switched off; the device was never revoked.
  'dr.gina': { role: 'physician', active: 0 },
};

interface Device {
  readonly id: string;
  readonly organization: string;
  readonly role: StructuralRole;
  readonly key: SigningKey;
  readonly x5c: string[];
}

let dir: string;
let pki: DemoPki;
let engine: PolicyEngine;
let consumerDb: TestDatabase<ConsumerTables>;
let producerDb: TestDatabase<ProducerTables>;
let consumer: FastifyInstance;
let rogue: SigningKey;
const orgKeys = new Map<string, SigningKey>();
const devices = new Map<string, Device & { serial?: string }>();
let revoke: (jws: string, by: Device) => Promise<unknown>;
let trust: LiveTrust;

const der = (c: X509Certificate) => toBase64(new Uint8Array(c.rawData));

async function device(
  id: string,
  role: StructuralRole,
  ca: 'consumer-ca' | 'producer-ca' = 'consumer-ca',
): Promise<Device & { pem: string; thumbprint: string; serial: string }> {
  const hospitalCa = pki.hospitalCas[ca];
  const signing = await generateSigningKeys();
  const encryption = await generateEncryptionKeys();
  const cert = await issueDevice(
    { cert: hospitalCa.cert, privateKey: hospitalCa.keys.privateKey },
    {
      clinician: { id, role, domain: ca === 'consumer-ca' ? OID.domainConsumer : PD },
      hospital:
        ca === 'consumer-ca' ? 'Riverside Consumer Hospital' : 'Saint-Louis Producer Hospital',
      publicKey: signing.publicKey,
      encryptionKey: new Uint8Array(await crypto.subtle.exportKey('spki', encryption.publicKey)),
    },
  );
  return {
    id,
    organization: ca === 'consumer-ca' ? 'consumer' : 'producer',
    role,
    key: await signingKeyFromCryptoKeys('ECDSA-P256', signing.privateKey, signing.publicKey),
    x5c: [der(cert), der(hospitalCa.cert)],
    pem: cert.toString('pem'),
    thumbprint: await thumbprint(cert),
    serial: cert.serialNumber,
  };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ztv-policy-table-'));
  pki = await createDemoPki();
  await writePkiDir(join(dir, 'pki'), pki, randomBytes(32));
  await signDemoPolicies(join(REPO_ROOT, 'policies'), join(dir, 'policies'), join(dir, 'pki'));
  trust = new LiveTrust(await loadPkiDir(join(dir, 'pki')), undefined, {});
  for (const o of Object.values(pki.organisations))
    orgKeys.set(
      o.id,
      await signingKeyFromCryptoKeys('ECDSA-P256', o.keys.privateKey, o.keys.publicKey),
    );
  rogue = await signingKeyFromPem((await generateKeyPairPem('ECDSA-P256')).privatePem);

  // The consumer hospital: its accounts and devices are the directory.
  consumerDb = await openTestDatabase<ConsumerTables>(
    'sqlite',
    'consumer_migrations',
    consumerMigrations,
  );
  const db = consumerDb.database.db;
  const passwordHash = await hashSecret('unused in this test');
  for (const [id, p] of Object.entries(PEOPLE)) {
    await addClinician(db, {
      id,
      name: id,
      role: p.role,
      domain: OID.domainConsumer,
      passwordHash,
    });
    if (p.active === 0)
      await db.updateTable('clinicians').set({ active: 0 }).where('id', '=', id).execute();
    // Signed in at their hospital (a consultation needs a live sign-in; see "sign-out" below).
    await db
      .insertInto('login_tokens')
      .values({
        token_hash: `live-sign-in-of-${id}`,
        clinician_id: id,
        expires_at: Date.now() + 8 * 3600_000,
        revoked: 0,
      })
      .execute();
    for (const role of p.devices ?? [p.role]) {
      const d = await device(id, role);
      devices.set(p.devices ? `${id}/${role}` : id, d);
      await db
        .insertInto('devices')
        .values({
          serial: d.serial,
          clinician_id: id,
          thumbprint: d.thumbprint,
          pem: d.pem,
          issued_at: DAY.toISOString(),
          revoked_at: null,
        })
        .execute();
    }
  }
  // A device the consumer's CA certified for someone its directory does not know.
  devices.set('dr.ghost', await device('dr.ghost', 'physician'));
  // A radiologist of the producer hospital (its own device CA).
  devices.set('dr.paul', await device('dr.paul', 'radiologist', 'producer-ca'));
  const ca = pki.hospitalCas['consumer-ca'];
  consumer = await buildConsumer({
    database: consumerDb.database,
    hospitalName: 'Riverside Consumer Hospital',
    deviceCa: { cert: ca.cert, privateKey: ca.keys.privateKey },
    pki: () => trust.view(),
    audit: new AuditStore(consumerDb.database, 'consumer', orgKeys.get('consumer')!),
    memberId: 'consumer',
    signer: orgKeys.get('consumer')!,
    logLevel: 'silent',
  });
  const url = await consumer.listen({ host: '127.0.0.1', port: 0 });

  // The producer's revocation table, and its revoke-delegation operation as the producer registers
  // it (the contract's schema, then the handler), called with a device session's context.
  producerDb = await openTestDatabase<ProducerTables>(
    'sqlite',
    'producer_migrations',
    producerMigrations,
  );
  const producer = Fastify({ logger: false });
  producer.decorate('sessionOperations', new SessionOperations());
  await producer.register(revocationPlugin, {
    db: producerDb.database.db,
    audit: new AuditStore(producerDb.database, 'producer', orgKeys.get('producer')!),
    resolveClinician: clinicianResolver(trust),
    now: () => DAY.getTime(),
  });
  await producer.ready();
  revoke = async (jws, by) => {
    const accepted = producer.sessionOperations.message('revoke-delegation')!({ delegation: jws });
    if ('error' in accepted) throw new Error(accepted.error);
    return accepted.run({
      client: {
        subject: `CN=${by.id}`,
        thumbprint: 'ab'.repeat(32),
        spki: new Uint8Array(),
        attributes: {
          kind: 'device',
          clinicianId: by.id,
          hospital: by.organization,
          role: by.role,
        },
      },
      sessionId: '00'.repeat(16),
      packet: 65536,
    } as OperationContext);
  };

  engine = await loadPolicyEngine(trust, {
    dir: join(dir, 'policies'),
    directories: { consumer: url },
    isRevoked: revocationCheck(producerDb.database.db),
  });
}, 60_000);

afterAll(async () => {
  await consumer?.close();
  await consumerDb?.cleanup();
  await producerDb?.cleanup();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

// --- statements ----------------------------------------------------------------------------------

const assign = (
  sub: string,
  role: string,
  scope: { patient?: string; study?: string },
  over: Partial<Pick<RoleAssignment, 'nbf' | 'exp' | 'iss' | 'sub_org'>> & {
    signer?: SigningKey;
  } = {},
) => {
  const iss = over.iss ?? 'consumer';
  const key = over.signer ?? orgKeys.get(iss)!;
  return issueRoleAssignment(
    { key, kid: key.publicKey.keyIdHex },
    {
      iss,
      sub,
      ...(over.sub_org ? { sub_org: over.sub_org } : {}),
      role,
      ...scope,
      nbf: over.nbf ?? DAY.getTime() - HOUR,
      exp: over.exp ?? DAY.getTime() + 24 * HOUR,
    },
  );
};

const delegate = (
  from: string,
  to: string,
  role: string,
  activity: string,
  over: Partial<Omit<Delegation, 'jti'>> & { signer?: SigningKey } = {},
) => {
  const d = devices.get(from)!;
  const key = over.signer ?? d.key;
  const { signer: _s, ...claims } = over;
  return issueDelegation(
    { key, kid: key.publicKey.keyIdHex, ...(over.signer ? {} : { x5c: d.x5c }) },
    {
      iss: d.id,
      iss_org: d.organization,
      sub: devices.get(to)?.id ?? to,
      sub_org: devices.get(to)?.organization ?? 'consumer',
      role,
      activity,
      nbf: DAY.getTime() - HOUR,
      exp: DAY.getTime() + 24 * HOUR,
      ...claims,
    },
  );
};

/** A request as the services make it from the device of the session and the body. */
const req = (
  who: string,
  activity: string,
  over: {
    purpose?: string;
    time?: Date;
    justification?: string;
    trace?: boolean;
    res?: AccessRequest['resource'];
    ra?: string[];
    dl?: string[][];
    principal?: AccessRequest['principal'];
  } = {},
): AccessRequest => {
  const d = devices.get(who);
  return {
    principal: over.principal ?? {
      id: d?.id ?? who,
      organization: d?.organization ?? 'consumer',
      roles: [d?.role ?? 'physician'],
    },
    activity,
    resource: over.res ?? { kind: 'study', patient: 'P1', study: 'S1' },
    context: {
      ...('purpose' in over
        ? over.purpose !== undefined
          ? { purpose: over.purpose }
          : {}
        : { purpose: 'TREAT' }),
      time: over.time ?? DAY,
      ...(over.justification !== undefined ? { emergencyJustification: over.justification } : {}),
      ...(over.trace !== undefined ? { traceInserted: over.trace } : {}),
    },
    ...(over.ra ? { roleAssignments: over.ra } : {}),
    ...(over.dl ? { delegations: over.dl } : {}),
  };
};

const IMAGE = { kind: 'image' } as const;
const TRAIL = { kind: 'audit-trail' } as const;
const LIST = { kind: 'patient-list' } as const;
const P2 = { kind: 'study', patient: 'P2', study: 'S2' } as const;

/** The requests of the table, by row id; what each must give is in docs/policy.md. */
const REQUESTS: Record<string, { domain?: string; request: () => Promise<AccessRequest> }> = {
  // Functional roles and their attribute authorities.
  T01: {
    request: async () =>
      req('dr.bob', 'consult', { ra: [await assign('dr.bob', 'attending', { patient: 'P1' })] }),
  },
  T02: {
    request: async () =>
      req('dr.bob', 'consult', { ra: [await assign('dr.bob', 'attending', { patient: 'P2' })] }),
  },
  T03: {
    request: async () =>
      req('dr.bob', 'consult', {
        ra: [await assign('dr.bob', 'attending', { patient: 'P1' }, { exp: DAY.getTime() - 1 })],
      }),
  },
  T04: {
    request: async () =>
      req('dr.bob', 'consult', {
        ra: [await assign('dr.bob', 'attending', { patient: 'P1' }, { nbf: DAY.getTime() + HOUR })],
      }),
  },
  T05: {
    request: async () =>
      req('dr.bob', 'consult', {
        ra: [await assign('dr.bob', 'attending', { patient: 'P1' }, { signer: rogue })],
      }),
  },
  T06: {
    request: async () => {
      const [h, , s] = (await assign('dr.carl', 'attending', { patient: 'P1' })).split('.');
      const forged = Buffer.from(
        JSON.stringify({
          iss: 'consumer',
          sub: 'dr.bob',
          role: 'attending',
          patient: 'P1',
          nbf: 0,
          exp: 9e15,
          jti: 'x',
        }),
      ).toString('base64url');
      return req('dr.bob', 'consult', { ra: [`${h}.${forged}.${s}`] });
    },
  },
  T07: {
    request: async () =>
      req('dr.bob', 'consult', { ra: [await assign('dr.carl', 'attending', { patient: 'P1' })] }),
  },
  T08: {
    request: async () =>
      req('dr.bob', 'consult', {
        ra: [await assign('dr.bob', 'attending', { patient: 'P1' }, { iss: 'cloud' })],
      }),
  },
  T09: {
    request: async () =>
      req('dr.bob', 'consult', {
        ra: [await assign('dr.bob', 'attending', { patient: 'P1' }, { iss: 'producer' })],
      }),
  },
  T10: {
    request: async () =>
      req('dr.bob', 'consult', {
        ra: [
          await assign(
            'dr.bob',
            'attending',
            { patient: 'P1' },
            { iss: 'producer', sub_org: 'consumer' },
          ),
        ],
      }),
  },
  T11: {
    request: async () =>
      req('dr.alice', 'consult', {
        ra: [await assign('dr.alice', 'reading-radiologist', { study: 'S1' })],
      }),
  },
  T12: {
    request: async () =>
      req('dr.alice', 'consult', {
        ra: [await assign('dr.alice', 'reading-radiologist', { study: 'S2' })],
      }),
  },
  T13: { request: async () => req('dr.alice', 'consult') },
  T14: {
    request: async () =>
      req('nurse.carol', 'consult', {
        ra: [await assign('nurse.carol', 'attending', { patient: 'P1' })],
      }),
  },
  T15: {
    request: async () =>
      req('auditor.dave', 'consult', {
        ra: [await assign('auditor.dave', 'attending', { patient: 'P1' })],
      }),
  },
  T16: {
    request: async () =>
      req('nurse.carol', 'consult', {
        ra: [await assign('dr.bob', 'attending', { patient: 'P1' })],
        dl: [[await delegate('dr.bob', 'nurse.carol', 'attending', 'consult', { patient: 'P1' })]],
      }),
  },
  T17: {
    request: async () =>
      req('auditor.dave', 'consult', {
        ra: [await assign('dr.bob', 'attending', { patient: 'P1' })],
        dl: [[await delegate('dr.bob', 'auditor.dave', 'attending', 'consult', { patient: 'P1' })]],
      }),
  },
  // Separation of duty per person, from the hospital's directory.
  T18: {
    request: async () =>
      req('dr.frank/physician', 'consult', {
        ra: [await assign('dr.frank', 'attending', { patient: 'P1' })],
      }),
  },
  T19: {
    request: async () => req('dr.frank/auditor', 'read-audit', { purpose: 'HOPERAT', res: TRAIL }),
  },
  T20: {
    request: async () =>
      req('dr.gina', 'consult', { ra: [await assign('dr.gina', 'attending', { patient: 'P1' })] }),
  },
  T21: {
    request: async () =>
      req('dr.ghost', 'consult', {
        ra: [await assign('dr.ghost', 'attending', { patient: 'P1' })],
      }),
  },
  T22: {
    request: async () =>
      req('auditor.dave', 'read-audit', {
        purpose: 'HOPERAT',
        res: TRAIL,
        principal: {
          id: 'auditor.dave',
          organization: 'consumer',
          roles: ['auditor', 'physician'],
        },
      }),
  },
  // Purposes of use.
  T23: { request: async () => req('dr.alice', 'consult', { purpose: 'HRESCH' }) },
  T24: { request: async () => req('dr.bob', 'consult', { purpose: 'HRESCH' }) },
  T25: {
    request: async () =>
      req('dr.bob', 'consult', {
        purpose: 'HMARKT',
        ra: [await assign('dr.bob', 'attending', { patient: 'P1' })],
      }),
  },
  T26: {
    request: async () =>
      req('dr.bob', 'consult', {
        purpose: 'insurance-claim',
        ra: [await assign('dr.bob', 'attending', { patient: 'P1' })],
      }),
  },
  T27: {
    request: async () =>
      req('dr.bob', 'consult', {
        purpose: 'Marketing',
        ra: [await assign('dr.bob', 'attending', { patient: 'P1' })],
      }),
  },
  T28: {
    request: async () =>
      req('dr.bob', 'consult', {
        purpose: 'treat',
        ra: [await assign('dr.bob', 'attending', { patient: 'P1' })],
      }),
  },
  T29: {
    request: async () =>
      req('dr.bob', 'consult', {
        purpose: undefined,
        ra: [await assign('dr.bob', 'attending', { patient: 'P1' })],
      }),
  },
  T30: {
    request: async () =>
      req('dr.bob', 'consult', {
        purpose: 'HPAYMT',
        ra: [await assign('dr.bob', 'attending', { patient: 'P1' })],
      }),
  },
  // Break-glass.
  T31: {
    request: async () =>
      req('dr.bob', 'consult', { purpose: 'ETREAT', time: NIGHT, justification: JUSTIFIED }),
  },
  T32: {
    request: async () =>
      req('dr.alice', 'consult', { purpose: 'HRESCH', justification: JUSTIFIED }),
  },
  T33: {
    request: async () =>
      req('dr.bob', 'consult', { purpose: 'TREAT', time: NIGHT, justification: JUSTIFIED }),
  },
  T34: {
    request: async () =>
      req('dr.bob', 'consult', { purpose: 'ETREAT', time: NIGHT, justification: 'x'.repeat(20) }),
  },
  T35: {
    request: async () =>
      req('dr.bob', 'consult', { purpose: 'ETREAT', time: NIGHT, justification: 'urgent' }),
  },
  T36: {
    request: async () =>
      req('dr.alice', 'consult', { purpose: 'ETREAT', justification: JUSTIFIED }),
  },
  T37: {
    request: async () =>
      req('admin.erin', 'consult', {
        purpose: 'ETREAT',
        justification: 'the doctor asked me to print it quickly',
      }),
  },
  // Time of day in the hospital's time zone; prohibitions over permissions.
  T38: {
    request: async () =>
      req('nurse.carol', 'consult', {
        ra: [await assign('nurse.carol', 'care-team', { patient: 'P1' })],
      }),
  },
  T39: {
    request: async () =>
      req('nurse.carol', 'consult', {
        time: NIGHT,
        ra: [await assign('nurse.carol', 'care-team', { patient: 'P1' })],
      }),
  },
  T40: {
    request: async () =>
      req('nurse.carol', 'consult', {
        purpose: 'ETREAT',
        time: NIGHT,
        justification: 'patient deteriorating, doctor on the way',
        ra: [await assign('nurse.carol', 'care-team', { patient: 'P1' })],
      }),
  },
  T41: { request: async () => req('nurse.carol', 'consult') },
  T42: { request: async () => req('admin.erin', 'consult') },
  T43: {
    request: async () =>
      req('admin.erin', 'consult', {
        ra: [await assign('admin.erin', 'attending', { patient: 'P1' })],
      }),
  },
  // Search.
  T44: { request: async () => req('dr.bob', 'search', { res: LIST }) },
  T45: { request: async () => req('nurse.carol', 'search', { res: LIST }) },
  T46: { request: async () => req('dr.bob', 'search', { purpose: 'HRESCH', res: LIST }) },
  // Auditors.
  T47: {
    request: async () => req('auditor.dave', 'read-audit', { purpose: 'HOPERAT', res: TRAIL }),
  },
  T48: { request: async () => req('auditor.dave', 'read-audit', { res: TRAIL }) },
  T49: {
    request: async () =>
      req('auditor.dave', 'review-break-glass', {
        purpose: 'HOPERAT',
        res: { kind: 'break-glass', requester: 'dr.bob' },
      }),
  },
  T50: {
    request: async () =>
      req('auditor.dave', 'review-break-glass', {
        purpose: 'HOPERAT',
        res: { kind: 'break-glass', requester: 'auditor.dave' },
      }),
  },
  T51: {
    request: async () =>
      req('dr.bob', 'review-break-glass', {
        purpose: 'HOPERAT',
        res: { kind: 'break-glass', requester: 'dr.carl' },
      }),
  },
  // Delegation.
  T52: {
    request: async () =>
      req('dr.bob', 'consult', {
        purpose: 'HRESCH',
        dl: [[await delegate('dr.alice', 'dr.bob', 'radiologist', 'consult')]],
      }),
  },
  T53: {
    request: async () =>
      req('dr.bob', 'consult', {
        purpose: 'HRESCH',
        dl: [
          [
            await delegate('dr.alice', 'dr.bob', 'radiologist', 'consult', {
              exp: DAY.getTime() - 1,
            }),
          ],
        ],
      }),
  },
  T54: {
    request: async () =>
      req('dr.carl', 'consult', {
        purpose: 'HRESCH',
        dl: [
          [
            await delegate('dr.alice', 'dr.bob', 'radiologist', 'consult'),
            await delegate('dr.bob', 'dr.carl', 'radiologist', 'consult'),
          ],
        ],
      }),
  },
  T55: {
    request: async () =>
      req('dr.dora', 'consult', {
        purpose: 'HRESCH',
        dl: [
          [
            await delegate('dr.alice', 'dr.bob', 'radiologist', 'consult'),
            await delegate('dr.bob', 'dr.carl', 'radiologist', 'consult'),
            await delegate('dr.carl', 'dr.dora', 'radiologist', 'consult'),
          ],
        ],
      }),
  },
  T56: {
    request: async () =>
      req('dr.dora', 'consult', {
        purpose: 'HRESCH',
        dl: [
          [
            await delegate('dr.alice', 'dr.bob', 'radiologist', 'consult'),
            await delegate('dr.carl', 'dr.dora', 'radiologist', 'consult'),
          ],
        ],
      }),
  },
  T57: {
    request: async () =>
      req('dr.carl', 'consult', {
        purpose: 'HRESCH',
        dl: [[await delegate('dr.bob', 'dr.carl', 'radiologist', 'consult')]],
      }),
  },
  T58: {
    request: async () =>
      req('dr.bob', 'consult', {
        purpose: 'HRESCH',
        dl: [[await delegate('dr.alice', 'dr.bob', 'radiologist', 'search')]],
      }),
  },
  T59: {
    request: async () =>
      req('dr.bob', 'consult', {
        purpose: 'HRESCH',
        dl: [[await delegate('dr.alice', 'dr.bob', 'radiologist', 'consult', { signer: rogue })]],
      }),
  },
  T60: {
    request: async () =>
      req('dr.eve', 'consult', {
        purpose: 'HRESCH',
        dl: [[await delegate('dr.alice', 'dr.bob', 'radiologist', 'consult')]],
      }),
  },
  T61: {
    request: async () =>
      req('dr.alice', 'consult', {
        purpose: 'HRESCH',
        dl: [[await delegate('dr.alice', 'dr.alice', 'radiologist', 'consult')]],
      }),
  },
  T62: {
    request: async () =>
      req('dr.carl', 'consult', {
        res: P2,
        ra: [
          await assign('dr.bob', 'attending', { patient: 'P1' }),
          await assign('dr.bob', 'attending', { patient: 'P2' }),
        ],
        dl: [[await delegate('dr.bob', 'dr.carl', 'attending', 'consult', { patient: 'P1' })]],
      }),
  },
  T63: {
    request: async () =>
      req('dr.carl', 'consult', {
        ra: [await assign('dr.bob', 'attending', { patient: 'P1' })],
        dl: [[await delegate('dr.bob', 'dr.carl', 'attending', 'consult')]],
      }),
  },
  T64: {
    request: async () =>
      req('dr.bob', 'consult', {
        purpose: 'HRESCH',
        dl: [[await delegate('dr.paul', 'dr.bob', 'radiologist', 'consult')]],
      }),
  },
  T65: {
    request: async () =>
      req('dr.eve', 'review-break-glass', {
        purpose: 'HOPERAT',
        res: { kind: 'break-glass', requester: 'dr.bob' },
        dl: [[await delegate('auditor.dave', 'dr.eve', 'auditor', 'review-break-glass')]],
      }),
  },
  T66: {
    request: async () =>
      req('dr.dora', 'consult', {
        ra: [await assign('dr.bob', 'attending', { patient: 'P1' })],
        dl: [
          [
            await delegate('dr.bob', 'dr.carl', 'attending', 'consult', { patient: 'P1' }),
            await delegate('dr.carl', 'dr.dora', 'attending', 'consult', { patient: 'P1' }),
          ],
        ],
      }),
  },
  T67: {
    request: async () => {
      const jws = await delegate('dr.alice', 'dr.bob', 'radiologist', 'consult');
      await revoke(jws, devices.get('dr.alice')!);
      return req('dr.bob', 'consult', { purpose: 'HRESCH', dl: [[jws]] });
    },
  },
  T68: {
    request: async () =>
      req('dr.carl', 'consult', {
        ra: [await assign('dr.bob', 'attending', { patient: 'P1' })],
        dl: [[await delegate('dr.bob', 'dr.carl', 'attending', 'consult', { patient: 'P1' })]],
      }),
  },
  T69: {
    request: async () =>
      req('dr.carl', 'consult', {
        ra: [await assign('dr.bob', 'attending', { patient: 'P2' })],
        dl: [[await delegate('dr.bob', 'dr.carl', 'attending', 'consult', { patient: 'P1' })]],
      }),
  },
  T70: {
    request: async () =>
      req('dr.carl', 'consult', {
        dl: [[await delegate('dr.bob', 'dr.carl', 'attending', 'consult', { patient: 'P1' })]],
      }),
  },
  T71: {
    request: async () =>
      req('dr.carl', 'consult', {
        ra: [await assign('dr.bob', 'attending', { patient: 'P1' }, { exp: DAY.getTime() - 1 })],
        dl: [[await delegate('dr.bob', 'dr.carl', 'attending', 'consult', { patient: 'P1' })]],
      }),
  },
  T72: {
    request: async () =>
      req('dr.carl', 'consult', {
        ra: [await assign('dr.eve', 'attending', { patient: 'P1' })],
        dl: [[await delegate('dr.bob', 'dr.carl', 'attending', 'consult', { patient: 'P1' })]],
      }),
  },
  T73: {
    request: async () =>
      req('dr.rita', 'consult', {
        ra: [await assign('dr.alice', 'reading-radiologist', { study: 'S1' })],
        dl: [
          [
            await delegate('dr.alice', 'dr.rita', 'reading-radiologist', 'consult', {
              study: 'S1',
            }),
          ],
        ],
      }),
  },
  T74: {
    request: async () =>
      req('nurse.nina', 'consult', {
        ra: [await assign('nurse.carol', 'care-team', { patient: 'P1' })],
        dl: [
          [await delegate('nurse.carol', 'nurse.nina', 'care-team', 'consult', { patient: 'P1' })],
        ],
      }),
  },
  // The cloud (federation domain).
  T75: { domain: FD, request: async () => req('dr.bob', 'redeem', { res: IMAGE }) },
  T76: {
    domain: FD,
    request: async () => req('dr.bob', 'redeem', { purpose: 'marketing', res: IMAGE }),
  },
  T77: {
    domain: FD,
    request: async () => req('dr.bob', 'redeem', { purpose: 'HMARKT', res: IMAGE }),
  },
  T78: { domain: FD, request: async () => req('dr.bob', 'release', { res: IMAGE }) },
  T79: { domain: FD, request: async () => req('dr.bob', 'release', { res: IMAGE, trace: true }) },
  T80: { domain: FD, request: async () => req('dr.frank/physician', 'redeem', { res: IMAGE }) },
  // The engine safe on its own.
  T81: {
    request: async () =>
      req('auditor.dave', 'read-audit', {
        purpose: 'HOPERAT',
        res: TRAIL,
        principal: { id: 'auditor.dave', organization: 'st-elsewhere', roles: ['auditor'] },
      }),
  },
  T82: {
    request: async () =>
      req('auditor.dave', 'read-audit', {
        purpose: 'HOPERAT',
        res: TRAIL,
        principal: { id: '', organization: 'consumer', roles: ['auditor'] },
      }),
  },
  T83: { request: async () => req('dr.bob', 'delete') },
  T84: { domain: '1.2.3', request: async () => req('dr.bob', 'consult') },
};

// --- the table in the docs -----------------------------------------------------------------------

interface DocRow {
  readonly id: string;
  readonly request: string;
  readonly decision: 'allow' | 'deny';
  readonly rules: string[];
  readonly obligations: string[];
  readonly says: string;
}

/** The rows between the table markers of docs/policy.md. */
export function decisionTable(markdown: string): DocRow[] {
  const start = markdown.indexOf('<!-- decision-table -->');
  const end = markdown.indexOf('<!-- /decision-table -->');
  if (start < 0 || end < start) throw new Error('docs/policy.md has no decision table');
  const list = (cell: string) =>
    cell === '—' ? [] : cell.split(',').map((x) => x.trim().replace(/`/g, ''));
  return markdown
    .slice(start, end)
    .split('\n')
    .filter((l) => /^\| T\d+ /.test(l))
    .map((l) => {
      const cells = l.split(' | ').map((c) => c.replace(/^\|\s*|\s*\|$/g, '').trim());
      const [id, request, decision, rules, obligations, says] = cells as [
        string,
        string,
        string,
        string,
        string,
        string,
      ];
      if (decision !== 'allow' && decision !== 'deny')
        throw new Error(`${id}: decision ${decision}`);
      return {
        id,
        request,
        decision,
        rules: list(rules),
        obligations: list(obligations),
        says: says === '—' ? '' : says.replace(/^"|"$/g, ''),
      };
    });
}

const DOC = decisionTable(readFileSync(join(REPO_ROOT, 'docs/policy.md'), 'utf8'));

describe('the decision table of docs/policy.md', () => {
  it(`has at least 50 rows, one per request here and no other (${DOC.length})`, () => {
    expect(DOC.length).toBeGreaterThanOrEqual(50);
    expect(DOC.map((r) => r.id).sort()).toEqual(Object.keys(REQUESTS).sort());
  });

  it.each(DOC.map((r) => [`${r.id} ${r.request}`, r] as const))('%s', async (_name, row) => {
    const spec = REQUESTS[row.id]!;
    const d: DecisionRecord = await engine.decide(spec.domain ?? PD, await spec.request());
    const said = [...d.errors, ...d.refusedStatements].join(' | ');
    expect(
      d.decision,
      JSON.stringify({ errors: d.errors, refused: d.refusedStatements, rules: d.rules }),
    ).toBe(row.decision);
    expect(d.rules).toEqual(row.rules);
    expect(d.obligations.map((o) => `${o.id}:${o.timing}`)).toEqual(row.obligations);
    if (row.says) expect(said).toContain(row.says);
    else if (row.decision === 'allow') expect(said).toBe('');
    // The record is loggable: JSON, and no statement (JWS) in it.
    expect(JSON.stringify(d)).not.toMatch(/eyJ[A-Za-z0-9_-]{20,}\./);
  });
});

describe('what the table rows do not show', () => {
  it('a delegated functional role carries its treatment relationship and the path, qualified by organisation', async () => {
    const d = await engine.decide(PD, await REQUESTS.T68!.request());
    expect(d.decision).toBe('allow');
    expect(d.request.context).toMatchObject({ treatment: true, delegated: true });
    expect(d.delegationPath).toEqual(['dr.bob@consumer', 'dr.carl@consumer']);
  });

  it('a refused self-delegation contributes nothing: no delegation context, no path', async () => {
    const d = await engine.decide(PD, await REQUESTS.T61!.request());
    expect(d.request.context.delegated).toBe(false);
    expect(d.delegationPath).toBeUndefined();
  });

  it('separation of duty sees every role the directory gives the person, and the record says which', async () => {
    const d = await engine.decide(PD, await REQUESTS.T18!.request());
    expect(d.request.roles).toEqual(['attending', 'physician']);
    expect(d.request.held).toEqual(['auditor', 'physician']);
  });

  it('the break-glass justification is in the decision record, whole — also when it is refused', async () => {
    const ok = await engine.decide(PD, await REQUESTS.T31!.request());
    expect(ok.request.context.justification).toBe(JUSTIFIED);
    const refused = await engine.decide(PD, await REQUESTS.T34!.request());
    expect(refused.request.context.justification).toBe('x'.repeat(20));
  });

  it('only the delegator revokes a delegation, through their own device', async () => {
    const jws = await delegate('dr.alice', 'dr.bob', 'radiologist', 'consult');
    await expect(revoke(jws, devices.get('dr.bob')!)).rejects.toThrow(/only the delegator/);
    await expect(revoke('not a delegation at all', devices.get('dr.alice')!)).rejects.toThrow(
      /not a delegation signed by a device of the federation/,
    );
    const allowed = await engine.decide(
      PD,
      req('dr.bob', 'consult', { purpose: 'HRESCH', dl: [[jws]] }),
    );
    expect(allowed.decision).toBe('allow');
    await expect(revoke(jws, devices.get('dr.alice')!)).resolves.toMatchObject({
      until: DAY.getTime() + 24 * HOUR,
    });
    const after = await engine.decide(
      PD,
      req('dr.bob', 'consult', { purpose: 'HRESCH', dl: [[jws]] }),
    );
    expect(after.decision).toBe('deny');
    expect(after.refusedStatements.join(' ')).toMatch(/revoked/);
  });

  it('the directory counts a device of the person until it is revoked, and signs what it says', async () => {
    const entry = async (who: string) => {
      const r = await consumer.inject({ method: 'GET', url: `/directory/${who}` });
      expect(r.statusCode).toBe(200);
      const jws = (r.json() as { entry: string }).entry;
      return verifyDirectoryEntry(
        jws,
        issuerResolver(trust),
        { id: who, organization: 'consumer' },
        Date.now(),
      );
    };
    expect(await entry('dr.frank')).toMatchObject({
      active: true,
      roles: ['auditor', 'physician'],
    });
    expect(await entry('dr.gina')).toMatchObject({ active: false, roles: ['physician'] });
    expect(await entry('nobody')).toMatchObject({ active: false, roles: [] });
    await consumerDb.database.db
      .updateTable('devices')
      .set({ revoked_at: DAY.toISOString() })
      .where('serial', '=', devices.get('dr.frank/auditor')!.serial!)
      .execute();
    expect(await entry('dr.frank')).toMatchObject({ active: true, roles: ['physician'] });
    // Whether the person has a live sign-in: signed out (every token revoked), they have none.
    expect(await entry('dr.frank')).toMatchObject({ signedIn: true });
    expect(await entry('nobody')).toMatchObject({ signedIn: false });
    await consumerDb.database.db
      .updateTable('login_tokens')
      .set({ revoked: 1 })
      .where('clinician_id', '=', 'dr.frank')
      .execute();
    expect(await entry('dr.frank')).toMatchObject({ active: true, signedIn: false });
    expect((await consumer.inject({ method: 'GET', url: '/directory/a%20b' })).statusCode).toBe(
      400,
    );
  });

  it('a directory that cannot be reached fails the request closed', async () => {
    const trust = new LiveTrust(await loadPkiDir(join(dir, 'pki')), undefined, {});
    const offline = await loadPolicyEngine(trust, {
      dir: join(dir, 'policies'),
      directories: { consumer: 'http://127.0.0.1:1' },
    });
    const d = await offline.decide(PD, await REQUESTS.T01!.request());
    expect(d.decision).toBe('deny');
    expect(d.errors.join(' ')).toMatch(
      /directory of consumer could not confirm dr\.bob: the directory is unreachable/,
    );
  });
});
