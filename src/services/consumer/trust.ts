/**
 * What the viewer pins and checks signers against: `GET /trust` serves the federation's root,
 * intermediates, organisation certificates, CRLs and the authority's current trust group, as the
 * hospital's live view has them (refreshed every few seconds), not the copy of its PKI directory.
 */
import type { FastifyInstance } from 'fastify';
import { crlPem } from '../../core/pki/issue.ts';
import type { LoadedPki } from '../common/pki-dir.ts';

export interface TrustOptions {
  readonly pki: () => LoadedPki;
}

export async function trustPlugin(app: FastifyInstance, opts: TrustOptions): Promise<void> {
  app.get('/trust', async () => {
    const pki = opts.pki();
    return {
      root: pki.root.toString('pem'),
      intermediates: pki.intermediates.map((c) => c.toString('pem')),
      organisations: pki.organisations.map((c) => c.toString('pem')),
      crls: pki.crls.map(crlPem),
      trustGroup: pki.trustGroupJws,
    };
  });
}
