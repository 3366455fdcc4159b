/**
 * How the auditors' commands reach the federation: sign in at the consumer hospital with an auditor
 * account, take the federation's trust material from it (optionally pinned to a root certificate),
 * enroll an ephemeral device whose keys never leave this process, open sessions with it, and at the
 * end close them, revoke that device and sign out. The password comes from a file or ZTV_PASSWORD
 * (a --password on the command line is visible to other users of the machine).
 */
import { AuditorClient, enrollDevice } from '../../core/audit/client.ts';
import { fromUtf8 } from '../../core/bytes.ts';
import { fetchTrust } from '../../core/client/federation.ts';
import { ZtvError } from '../../core/errors.ts';
import { readInput, UsageError, type Options } from '../common.ts';

export const CONNECT_OPTIONS = {
  consumer: { type: 'string' },
  producer: { type: 'string' },
  cloud: { type: 'string' },
  user: { type: 'string' },
  password: { type: 'string' },
  'password-file': { type: 'string' },
  root: { type: 'string' },
} as const satisfies Options;

export const CONNECT_USAGE =
  '--consumer URL --user NAME [--password-file FILE | env ZTV_PASSWORD | --password P] [--root CA.pem]';

type Values = Record<string, string | boolean | undefined>;

const str = (v: Values, k: string): string | undefined =>
  typeof v[k] === 'string' && v[k] !== '' ? (v[k] as string) : undefined;

const url = (v: Values, k: string): string | undefined => {
  const u = str(v, k);
  if (u === undefined) return undefined;
  if (!/^https?:\/\/[^\s/]+/.test(u)) throw new UsageError(`--${k} must be an http(s) URL`);
  return u.replace(/\/+$/, '');
};

export const wantsServices = (v: Values): boolean =>
  ['consumer', 'producer', 'cloud', 'user'].some((k) => str(v, k) !== undefined);

export interface AuditorConnection {
  readonly client: AuditorClient;
  readonly user: string;
  close(): Promise<void>;
}

async function answer(r: Response, what: string): Promise<Record<string, unknown>> {
  const body = (await r.json().catch(() => ({}))) as Record<string, unknown>;
  if (!r.ok)
    throw new ZtvError(
      'bad-input',
      `${what}: ${typeof body.message === 'string' ? body.message : `HTTP ${r.status}`}`,
    );
  return body;
}

/** Signs in, enrolls an ephemeral device and returns an auditor client over it. */
export async function connectAuditor(v: Values, usage: string): Promise<AuditorConnection> {
  const consumer = url(v, 'consumer');
  const user = str(v, 'user');
  if (!consumer || !user)
    throw new UsageError(
      `--consumer and --user are required to reach the services\nusage: ${usage}`,
    );
  const passwordFile = str(v, 'password-file');
  const password =
    (passwordFile ? fromUtf8(readInput(passwordFile, 'password file')).trim() : undefined) ??
    str(v, 'password') ??
    process.env.ZTV_PASSWORD;
  if (!password)
    throw new UsageError(
      `give the password with --password-file FILE or ZTV_PASSWORD\nusage: ${usage}`,
    );
  const rootFile = str(v, 'root');
  const root = rootFile ? fromUtf8(readInput(rootFile, 'root certificate')) : undefined;
  const reach = async (u: string, init?: RequestInit): Promise<Response> => {
    try {
      return await fetch(u, init);
    } catch (e) {
      throw new ZtvError(
        'bad-input',
        `cannot reach ${new URL(u).origin}: ${(e as { cause?: { code?: string } }).cause?.code ?? (e as Error).message}`,
      );
    }
  };
  const login = await answer(
    await reach(`${consumer}/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ user, password }),
    }),
    'sign-in refused',
  );
  const token = String(login.token);
  const trust = await fetchTrust(consumer, root, reach as typeof fetch);
  const device = await enrollDevice(consumer, token, `ztv auditor ${user}`, reach as typeof fetch);
  const producer = url(v, 'producer');
  const cloud = url(v, 'cloud');
  const witness = url(v, 'witness');
  const client = new AuditorClient(
    {
      producer: producer ?? '',
      consumer,
      ...(cloud ? { cloud } : {}),
      ...(witness ? { witness } : {}),
    },
    device,
    () => trust,
    reach as typeof fetch,
  );
  const auth = { 'content-type': 'application/json', authorization: `Bearer ${token}` };
  return {
    client,
    user,
    async close() {
      await client.close().catch(() => undefined);
      // The device was for this command only: revoke it, then end the sign-in.
      await reach(`${consumer}/devices/revocations`, {
        method: 'POST',
        headers: auth,
        body: JSON.stringify({ serial: device.serial }),
      }).catch(() => undefined);
      await reach(`${consumer}/logout`, {
        method: 'POST',
        headers: { authorization: auth.authorization },
      }).catch(() => undefined);
    },
  };
}
