/**
 * What the authority publishes to the federation's members (over mutual TLS): its root certificate
 * (`GET /ca.pem`), its current CRL (`GET /crl.pem`) and the current signed trust group
 * (`GET /trust-group`, a flattened JWS by the root).
 */
import type { FastifyInstance } from 'fastify';
import type { Issuer } from '../../core/pki/issue.ts';
import { HttpError } from '../common/http.ts';
import type { Authority } from './authority.ts';

export interface PublicationOptions {
  readonly authority: Authority;
  readonly root: Issuer;
}

const PEM = { schema: { response: { 200: { type: 'string' } } } } as const;

export async function publicationPlugin(
  app: FastifyInstance,
  opts: PublicationOptions,
): Promise<void> {
  app.get('/ca.pem', PEM, async (_req, reply) =>
    reply.type('application/x-pem-file').send(opts.root.cert.toString('pem') + '\n'),
  );
  app.get('/crl.pem', PEM, async (_req, reply) => {
    const pem = (await opts.authority.currentCrl()) ?? (await opts.authority.publishCrl());
    return reply.type('application/pkix-crl').send(pem);
  });
  app.get('/trust-group', async (_req, reply) => {
    const jws = await opts.authority.currentTrustGroup();
    if (!jws) throw new HttpError(503, 'not-ready', 'no trust group has been published yet');
    return reply.send(jws);
  });
}
