/** Who signed a ticket: one resolver for the viewer's workers, the Node client and the cloud. */
import { toHex } from '../bytes.ts';
import { keyIdOf, verifyKeyFromSpki } from '../crypto/keys.ts';
import { ZtvError } from '../errors.ts';
import { readOrganisation } from '../pki/extensions.ts';
import { OID, type OrgRole } from '../pki/oids.ts';
import type { PkiView } from '../pki/resolver.ts';
import { memberOf } from '../pki/trust-group.ts';
import { validateCertificate } from '../pki/validate.ts';
import type { ProducerLookup } from './ticket.ts';

/**
 * Who signed a ticket: the producer organisation whose certificate holds the JWS key id, valid up to
 * the pinned root now, not revoked, and admitted by the trust group as a producer — the cloud
 * checks its part with it, the clinician's side the key part. Throws with the reason otherwise.
 */
export function ticketProducerResolver(view: () => PkiView | Promise<PkiView>) {
  return async (kid: string): Promise<ProducerLookup> => {
    const pki = await view();
    for (const cert of pki.organisations) {
      const spki = new Uint8Array(cert.publicKey.rawData);
      if (toHex(keyIdOf(spki)) !== kid) continue;
      const ext = cert.getExtension(OID.organisationExtension);
      const role: OrgRole | undefined = ext ? readOrganisation(ext.value).role : undefined;
      if (role !== 'producer')
        throw new ZtvError(
          'ticket',
          'the ticket is signed by an organisation that is not a producer',
        );
      const v = await validateCertificate(cert, {
        anchors: [pki.root],
        intermediates: pki.intermediates,
        crls: pki.crls,
        usage: 'signature',
      });
      if (!v.ok) throw new ZtvError('ticket', `the ticket's producer is not trusted: ${v.reason}`);
      const member = await memberOf(pki.trustGroup, cert);
      if (!member || member.role !== 'producer')
        throw new ZtvError(
          'ticket',
          `the ticket's producer is not in trust group version ${pki.trustGroup.version}`,
        );
      return { producerId: member.id, key: await verifyKeyFromSpki(spki) };
    }
    throw new ZtvError(
      'ticket',
      'the ticket is signed by a key no producer of the federation holds',
    );
  };
}
