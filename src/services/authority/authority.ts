/**
 * The authority's state: certificates recorded (issued here, or imported from the PKI directory at
 * first start), trust group versions and CRLs published — signed by the root, each a new row, so
 * versions only grow.
 */
import type { FlattenedJWS } from 'jose';
import { createCrl, crlPem, type Issuer } from '../../core/pki/issue.ts';
import type { OrgRole } from '../../core/pki/oids.ts';
import {
  signTrustGroup,
  type TrustGroup,
  type TrustGroupMember,
} from '../../core/pki/trust-group.ts';
import { thumbprint } from '../../core/pki/validate.ts';
import type { X509Certificate } from '../../core/pki/x509.ts';
import type { Database } from '../storage/db.ts';
import type { AuthorityTables } from './schema.ts';

export interface AuthorityState {
  readonly database: Database<AuthorityTables>;
  readonly root: Issuer;
  readonly now?: () => Date;
}

/** The authority's state operations, shared by routes and start-up. */
export class Authority {
  constructor(private readonly deps: AuthorityState) {}

  private get db() {
    return this.deps.database.db;
  }

  private now(): Date {
    return this.deps.now?.() ?? new Date();
  }

  /** Records a certificate issued elsewhere (the demo PKI made at first start). */
  async importCertificate(
    cert: X509Certificate,
    memberId: string,
    name: string,
    role: OrgRole,
    organization?: string,
  ): Promise<void> {
    await this.db
      .insertInto('certificates')
      .values({
        serial: cert.serialNumber,
        member_id: memberId,
        name,
        role,
        thumbprint: await thumbprint(cert),
        pem: cert.toString('pem'),
        issued_at: cert.notBefore.toISOString(),
        revoked_at: null,
        reason: null,
        admitted: 1,
        organization: organization ?? null,
      })
      .onConflict((oc) => oc.column('serial').doNothing())
      .execute();
  }

  /** Publishes a new trust group version: every admitted member with an unrevoked certificate. */
  async publishTrustGroup(): Promise<TrustGroup> {
    const rows = await this.db
      .selectFrom('certificates')
      .selectAll()
      .where('revoked_at', 'is', null)
      .where('admitted', '=', 1)
      .orderBy('member_id')
      .execute();
    const latest = await this.db
      .selectFrom('trust_groups')
      .select('version')
      .orderBy('version', 'desc')
      .executeTakeFirst();
    const members: TrustGroupMember[] = rows.map((r) => ({
      id: r.member_id,
      name: r.name,
      role: r.role as OrgRole,
      certificate: r.thumbprint,
      ...(r.organization ? { organization: r.organization } : {}),
    }));
    const group: TrustGroup = {
      version: (latest?.version ?? 0) + 1,
      issuedAt: this.now().toISOString(),
      members,
    };
    const jws = await signTrustGroup(group, this.deps.root);
    await this.db
      .insertInto('trust_groups')
      .values({ version: group.version, jws: JSON.stringify(jws), issued_at: group.issuedAt })
      .execute();
    return group;
  }

  /** Publishes a new CRL of the root listing every revoked certificate. */
  async publishCrl(): Promise<string> {
    const revoked = await this.db
      .selectFrom('certificates')
      .select(['serial', 'revoked_at'])
      .where('revoked_at', 'is not', null)
      .execute();
    const crl = await createCrl(
      this.deps.root,
      revoked.map((r) => ({ serialNumber: r.serial, date: new Date(r.revoked_at!) })),
      this.now(),
    );
    const latest = await this.db
      .selectFrom('crls')
      .select('seq')
      .orderBy('seq', 'desc')
      .executeTakeFirst();
    const pem = crlPem(crl);
    await this.db
      .insertInto('crls')
      .values({ seq: (latest?.seq ?? 0) + 1, pem, this_update: crl.thisUpdate.toISOString() })
      .execute();
    return pem;
  }

  /**
   * First start: records the certificates of the PKI directory and publishes its trust group and CRL
   * as they are (signed when the PKI was made), so versions continue from there.
   */
  async seed(pki: {
    organisations: readonly X509Certificate[];
    intermediates: readonly X509Certificate[];
    trustGroupJws: FlattenedJWS;
    trustGroup: TrustGroup;
    crlPem?: string;
  }): Promise<void> {
    const known = await this.db.selectFrom('certificates').select('serial').executeTakeFirst();
    if (known) return;
    for (const cert of [...pki.organisations, ...pki.intermediates]) {
      const tp = await thumbprint(cert);
      const m = pki.trustGroup.members.find((x) => x.certificate === tp);
      if (m) await this.importCertificate(cert, m.id, m.name, m.role, m.organization);
    }
    await this.db
      .insertInto('trust_groups')
      .values({
        version: pki.trustGroup.version,
        jws: JSON.stringify(pki.trustGroupJws),
        issued_at: pki.trustGroup.issuedAt,
      })
      .execute();
    if (pki.crlPem)
      await this.db
        .insertInto('crls')
        .values({ seq: 1, pem: pki.crlPem, this_update: this.now().toISOString() })
        .execute();
  }

  async currentTrustGroup(): Promise<FlattenedJWS | undefined> {
    const r = await this.db
      .selectFrom('trust_groups')
      .select('jws')
      .orderBy('version', 'desc')
      .executeTakeFirst();
    return r ? (JSON.parse(r.jws) as FlattenedJWS) : undefined;
  }

  async currentCrl(): Promise<string | undefined> {
    return (
      await this.db.selectFrom('crls').select('pem').orderBy('seq', 'desc').executeTakeFirst()
    )?.pem;
  }
}
