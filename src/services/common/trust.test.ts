/**
 * A party's live trust against a real mutual-TLS authority: a young view is served without waiting,
 * a background refresh picks up a new trust group, and once the authority has failed (unreachable,
 * or answering an error) for longer than twice the interval, a decision fails closed until it is back.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDemoPki, type DemoPki } from '../../core/pki/demo.ts';
import { crlPem } from '../../core/pki/issue.ts';
import { signTrustGroup } from '../../core/pki/trust-group.ts';
import { loadPkiDir, writePkiDir, type LoadedPki } from './pki-dir.ts';
import { mtlsServerOptions, type TlsIdentity } from './tls.ts';
import { LiveTrust } from './trust.ts';

const INTERVAL = 150;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let dir: string;
let demo: DemoPki;
let pki: LoadedPki;
let server: Server;
let base: string;
/** What the authority answers: its current trust group, or an error status. */
let authority: { status: number; trustGroup: string };

const identity = (party: string): TlsIdentity => ({
  cert: readFileSync(join(dir, `${party}.pem`), 'utf8'),
  key: readFileSync(join(dir, `${party}.key.pem`), 'utf8'),
  pki,
});

const publish = async (version: number, without?: string) =>
  JSON.stringify(
    await signTrustGroup(
      {
        version,
        issuedAt: new Date().toISOString(),
        members: demo.trustGroup.members.filter((m) => m.id !== without),
      },
      demo.root,
    ),
  );

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ztv-trust-'));
  demo = await createDemoPki();
  await writePkiDir(dir, demo, new Uint8Array(32));
  pki = await loadPkiDir(dir);
  authority = { status: 200, trustGroup: await publish(demo.trustGroup.version) };
  const crl = crlPem(demo.crls[0]!);
  server = createServer(mtlsServerOptions(identity('authority')), (req, res) => {
    if (authority.status !== 200) {
      res.writeHead(authority.status).end('unavailable');
      return;
    }
    res.writeHead(200).end(req.url === '/crl.pem' ? crl : authority.trustGroup);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(() => {
  server?.close();
  rmSync(dir, { recursive: true, force: true });
});

const cloudTrust = () => {
  const { pki: _pki, ...id } = identity('cloud');
  return new LiveTrust(pki, id, { authority: base }, INTERVAL);
};

describe('LiveTrust', () => {
  it('serves a young view without waiting, and a background refresh brings the new trust group', async () => {
    authority = { status: 200, trustGroup: await publish(demo.trustGroup.version) };
    const trust = cloudTrust();
    expect((await trust.fresh(true)).trustGroup.version).toBe(demo.trustGroup.version);
    trust.startRefreshing();
    // The authority fails: within the interval nothing waits for it, nothing fails.
    authority = { status: 503, trustGroup: '' };
    expect((await trust.fresh()).trustGroup.version).toBe(demo.trustGroup.version);
    // It publishes a new version (the producer removed): picked up without any request asking.
    authority = {
      status: 200,
      trustGroup: await publish(demo.trustGroup.version + 1, 'producer'),
    };
    // Polled (not a fixed wait), so a loaded machine only makes it slower.
    for (let i = 0; i < 100 && trust.view().trustGroup.version === demo.trustGroup.version; i++)
      await sleep(INTERVAL);
    const now = trust.view().trustGroup;
    expect(now.version).toBe(demo.trustGroup.version + 1);
    expect(now.members.map((m) => m.id)).not.toContain('producer');
  });

  it('fails closed once the authority has answered errors for longer than twice the interval, and recovers', async () => {
    authority = { status: 200, trustGroup: await publish(demo.trustGroup.version) };
    const trust = cloudTrust();
    await trust.fresh(true);
    authority = { status: 503, trustGroup: '' };
    await sleep(2 * INTERVAL + 50);
    await expect(trust.fresh()).rejects.toThrow(/the authority answered 503 for its trust group/);
    authority = { status: 200, trustGroup: await publish(demo.trustGroup.version) };
    expect((await trust.fresh()).trustGroup.version).toBe(demo.trustGroup.version);
  });

  it('fails closed when the authority cannot be reached at all', async () => {
    const { pki: _pki, ...id } = identity('cloud');
    const trust = new LiveTrust(pki, id, { authority: 'https://127.0.0.1:9' }, INTERVAL);
    await expect(trust.fresh()).rejects.toThrow(/ECONNREFUSED/);
  });
});
