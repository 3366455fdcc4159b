// GET / of a service: its name, version and health; a failing check answers 503 naming the check,
// never its error text.
import { describe, expect, it } from 'vitest';
import { aboutPlugin, restartsOf, VERSION } from './about.ts';
import { createApp } from './http.ts';

describe('GET /', () => {
  it('answers 200 when every check passes, 503 naming the one that failed, without its error', async () => {
    let healthy = true;
    const app = createApp({ name: 'test', logLevel: 'silent' });
    await app.register(aboutPlugin, {
      service: 'test',
      description: 'a test service',
      checks: {
        database: async () => undefined,
        trust: async () => {
          if (!healthy) throw new Error('secret detail of the failure');
        },
      },
    });
    const ok = await app.inject({ method: 'GET', url: '/' });
    expect(ok.statusCode).toBe(200);
    expect(ok.json()).toEqual({
      service: 'test',
      description: 'a test service',
      version: VERSION,
      health: 'ok',
      checks: { database: 'ok', trust: 'ok' },
      restarts: 0,
    });
    healthy = false;
    const down = await app.inject({ method: 'GET', url: '/' });
    expect(down.statusCode).toBe(503);
    expect(down.json()).toMatchObject({
      health: 'unavailable',
      checks: { database: 'ok', trust: 'failed' },
    });
    expect(down.body).not.toContain('secret detail');
    await app.close();
  });

  it('reports what the supervisor told a restarted process, and nothing it did not', () => {
    expect(restartsOf({ ZTV_RESTARTS: '2', ZTV_LAST_EXIT: 'SIGKILL' })).toEqual({
      restarts: 2,
      lastExit: 'SIGKILL',
    });
    expect(restartsOf({})).toEqual({ restarts: 0 });
    expect(restartsOf({ ZTV_RESTARTS: 'x', ZTV_LAST_EXIT: 'SIGKILL' })).toEqual({ restarts: 0 });
  });
});
