// What every service's app does before its routes (issue 16 §2, §5), on a real listening socket where
// it matters: a declared body longer than the route's limit is answered 413 before a byte of it is
// read and the connection is closed, not drained; an answer sent before the body was read (a refused
// token) closes the connection too; an unmatched route is logged and answered by its path, never its
// query string; browser answers say they must not be framed.
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendPartial } from '../../../test/raw-http.ts';
import { browserAccessPlugin } from './browser.ts';
import { createApp, DEFAULT_BODY_LIMIT, HttpError } from './http.ts';

const log: string[] = [];
let app: FastifyInstance;
let port: number;

const send = (path: string, declared: number, first: string, headers?: Record<string, string>) =>
  sendPartial(port, path, declared, first, headers);

beforeAll(async () => {
  app = createApp({ name: 'test', logLevel: 'info', logStream: { write: (l) => log.push(l) } });
  await app.register(browserAccessPlugin, { methods: ['POST'], headers: ['content-type'] });
  app.post('/small', { bodyLimit: 1024 }, async () => ({ ok: true }));
  app.post('/default', async () => ({ ok: true }));
  // Like STOW-RS: the body is handed over as a stream and the token checked before it is read.
  app.addContentTypeParser('application/octet-stream', (_req, payload, done) =>
    done(null, payload),
  );
  app.post('/guarded', { bodyLimit: 1024 * 1024 * 1024 }, async () => {
    throw new HttpError(401, 'unauthorised', 'a token is required');
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  port = (app.server.address() as AddressInfo).port;
}, 60_000);
afterAll(async () => {
  await app?.close();
});

describe('limits before anything else', () => {
  it('answers 413 on the declared length, before reading the body, and closes the connection', async () => {
    const r = await send('/small', 500_000_000, '{"a":');
    expect(r.answer).toMatch(/^HTTP\/1\.1 413 /);
    expect(r.answer).toContain("this request's body is limited to 1024 bytes");
    expect(r.closed).toBe(true);
    const d = await send('/default', DEFAULT_BODY_LIMIT + 1, '{');
    expect(d.answer).toMatch(/^HTTP\/1\.1 413 /);
    expect(d.closed).toBe(true);
  });

  it('closes the connection when it answers before reading the body (a refused token)', async () => {
    const r = await send('/guarded', 64 * 1024 * 1024, 'x'.repeat(1000), {
      'content-type': 'application/octet-stream',
    });
    expect(r.answer).toMatch(/^HTTP\/1\.1 401 /);
    expect(r.closed).toBe(true);
  });

  it('still answers a body within the limit, over inject too', async () => {
    const ok = await app.inject({ method: 'POST', url: '/small', payload: { a: 'b' } });
    expect(ok.statusCode).toBe(200);
    const big = await app.inject({
      method: 'POST',
      url: '/small',
      payload: { a: 'b'.repeat(2000) },
    });
    expect(big.statusCode).toBe(413);
    expect(big.json()).toMatchObject({ error: 'too-large' });
  });
});

describe('unmatched routes and browser headers', () => {
  it('logs and answers an unmatched route by its path, never its query string', async () => {
    const from = log.length;
    const r = await app.inject({
      method: 'GET',
      url: '/nope?token=SECRET-TOKEN-42&patient=LIDC-IDRI-0314',
    });
    expect(r.statusCode).toBe(404);
    expect(r.json()).toEqual({ error: 'not-found', message: 'no route GET /nope' });
    const lines = log.slice(from).join('');
    expect(lines).toContain('/nope');
    expect(lines).not.toContain('SECRET-TOKEN-42');
    expect(lines).not.toContain('LIDC-IDRI');
  });

  it('tells browsers never to frame an answer, as CSP frame-ancestors does for newer ones', async () => {
    const r = await app.inject({ method: 'POST', url: '/default', payload: {} });
    expect(r.headers['x-frame-options']).toBe('DENY');
  });
});
