/**
 * The ticket-producer resolver the cloud, the viewer's workers and the Node client share: each way a
 * signing key can fail to be a trusted producer's is refused with its reason.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { toHex } from '../bytes.ts';
import { keyIdOf } from '../crypto/keys.ts';
import { createDemoPki, type DemoPki } from '../pki/demo.ts';
import type { PkiView } from '../pki/resolver.ts';
import type { TrustGroup } from '../pki/trust-group.ts';
import { ticketProducerResolver } from './producer.ts';

let pki: DemoPki;
let view: PkiView;
const kidOf = (party: keyof DemoPki['organisations']) =>
  toHex(keyIdOf(new Uint8Array(pki.organisations[party].cert.publicKey.rawData)));

beforeAll(async () => {
  pki = await createDemoPki();
  view = {
    root: pki.root.cert,
    intermediates: [],
    organisations: Object.values(pki.organisations).map((o) => o.cert),
    crls: pki.crls,
    trustGroup: pki.trustGroup,
  };
});

describe('ticketProducerResolver', () => {
  it("finds the producer by its key id, with the trust group's member id, from a sync or async view", async () => {
    for (const resolve of [
      ticketProducerResolver(() => view),
      ticketProducerResolver(async () => view),
    ]) {
      const found = await resolve(kidOf('producer'));
      const member = pki.trustGroup.members.find((m) => m.role === 'producer')!;
      expect(found.producerId).toBe(member.id);
      expect(found.key.keyId).toEqual(
        keyIdOf(new Uint8Array(pki.organisations.producer.cert.publicKey.rawData)),
      );
    }
  });

  it('refuses an unknown key, a cloud key, and a producer missing from or mislabelled in the trust group', async () => {
    const resolve = ticketProducerResolver(() => view);
    await expect(resolve('00'.repeat(16))).rejects.toThrow(/no producer of the federation holds/);
    await expect(resolve(kidOf('cloud'))).rejects.toThrow(/not a producer/);

    const without: TrustGroup = {
      ...pki.trustGroup,
      version: 2,
      members: pki.trustGroup.members.filter((m) => m.role !== 'producer'),
    };
    await expect(
      ticketProducerResolver(() => ({ ...view, trustGroup: without }))(kidOf('producer')),
    ).rejects.toThrow(/not in trust group version 2/);

    // The certificate says producer, the CA's list admits it as something else: refused.
    const relabelled: TrustGroup = {
      ...pki.trustGroup,
      version: 3,
      members: pki.trustGroup.members.map((m) =>
        m.role === 'producer' ? { ...m, role: 'consumer' as const } : m,
      ),
    };
    await expect(
      ticketProducerResolver(() => ({ ...view, trustGroup: relabelled }))(kidOf('producer')),
    ).rejects.toThrow(/not in trust group version 3/);
  });

  it('refuses a producer whose certificate does not chain to the root in view', async () => {
    const other = await createDemoPki();
    const resolve = ticketProducerResolver(() => ({ ...view, root: other.root.cert }));
    await expect(resolve(kidOf('producer'))).rejects.toThrow(/producer is not trusted/);
  });
});
