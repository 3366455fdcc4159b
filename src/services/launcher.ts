/**
 * The federation's process launcher: starts the whole federation — authority, cloud, consumer
 * hospital, producer hospital — each as its own process (`src/services/<party>/main.ts`) with its own
 * data directory and certificates (the demo PKI is made on first start), waits until each says it
 * listens, and stops them all together. `npm start` and the integration tests use the same code.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes, toBase64Url } from '../core/bytes.ts';
import { ZtvError } from '../core/errors.ts';
import { createDemoPki } from '../core/pki/demo.ts';
import {
  configEnv,
  loadSecrets,
  saveSecrets,
  urls,
  type FederationConfig,
  type PartyName,
  type Secrets,
} from './common/config.ts';
import { isPkiDir, writePkiDir } from './common/pki-dir.ts';
import { signDemoPolicies } from './policy/files.ts';
import { Supervisor, type ProcessStatus, type SupervisorOptions } from './supervisor.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');

export interface Federation {
  readonly config: FederationConfig;
  readonly urls: ReturnType<typeof urls>;
  readonly secrets: Secrets;
  /**
   * Starts (or restarts) one party and waits until it listens. `instance` names a further process
   * of the same party (a second cloud replica, say); it defaults to the party's name.
   */
  start(
    party: PartyName,
    extraEnv?: Record<string, string>,
    instance?: string,
  ): Promise<ChildProcess>;
  /** Kills one process (a party or a named instance) with a signal (SIGKILL for the crash tests). */
  kill(instance: string, signal?: NodeJS.Signals): Promise<void>;
  stop(): Promise<void>;
  /** Each supervised process's state, restarts and last unasked end (empty when unsupervised). */
  status(): Record<string, ProcessStatus>;
  /** The running process of an instance, if any (its pid for an outside `kill -9`). */
  process(instance: string): ChildProcess | undefined;
  /** Resolves when the federation stopped because a supervised process kept dying, with why. */
  readonly failed: Promise<string>;
}

export interface FederationOptions {
  readonly config: FederationConfig;
  /** Forward the services' log lines to this process's stderr. */
  readonly verbose?: boolean;
  /** Care relationships to seed at the consumer: clinician:role:patient;… */
  readonly demoCare?: string;
  readonly env?: Record<string, string>;
  /** Sees every line the services print (tests scan them for secrets and wait on fault points). */
  readonly onOutput?: (instance: string, line: string) => void;
  /**
   * Restart a process that dies unasked, with back-off, and stop the federation if one keeps dying
   * (`src/services/supervisor.ts`); `npm start` supervises, the crash tests that kill on purpose
   * through `kill` are not affected.
   */
  readonly supervise?: boolean | SupervisorOptions;
}

/** Free TCP ports on the loopback interface (for tests that run several federations). */
export async function freePorts(n: number): Promise<number[]> {
  const ports: number[] = [];
  for (let i = 0; i < n; i++)
    ports.push(
      await new Promise<number>((resolve, reject) => {
        const s = createServer();
        s.on('error', reject);
        s.listen(0, '127.0.0.1', () => {
          const p = (s.address() as { port: number }).port;
          s.close(() => resolve(p));
        });
      }),
    );
  return ports;
}

/** First start: the demo PKI and the demo secrets. Later starts reuse them. */
export async function prepareFederation(c: FederationConfig): Promise<Secrets> {
  mkdirSync(c.dataDir, { recursive: true, mode: 0o700 });
  if (!isPkiDir(c.pkiDir)) await writePkiDir(c.pkiDir, await createDemoPki(), randomBytes(32));
  // The demo's security officers sign the repository's policies with the demo PKI, on every start.
  await signDemoPolicies(join(ROOT, 'policies'), join(c.dataDir, 'policies'), c.pkiDir);
  if (!existsSync(join(c.dataDir, 'secrets.json')))
    saveSecrets(c, {
      adminToken: toBase64Url(randomBytes(24)),
      stowToken: toBase64Url(randomBytes(24)),
    });
  return loadSecrets(c);
}

export async function startFederation(opts: FederationOptions): Promise<Federation> {
  const c = opts.config;
  const secrets = await prepareFederation(c);
  const procs = new Map<string, ChildProcess>();
  /** How each instance was started, to start it again the same way. */
  const how = new Map<string, { party: PartyName; env: Record<string, string> }>();
  let supervisor: Supervisor | undefined;
  let stopping: Promise<void> | undefined;
  let gaveUp!: (why: string) => void;
  const failed = new Promise<string>((resolve) => (gaveUp = resolve));

  const start = (
    party: PartyName,
    extraEnv: Record<string, string> = {},
    instance: string = party,
  ): Promise<ChildProcess> =>
    new Promise((resolve, reject) => {
      // ZTV_NODE_ARGS: extra Node flags for this process (diagnostics: --cpu-prof, --inspect…).
      const nodeArgs = (extraEnv.ZTV_NODE_ARGS ?? opts.env?.ZTV_NODE_ARGS ?? '')
        .split(/\s+/)
        .filter(Boolean);
      const child = spawn(
        process.execPath,
        [...nodeArgs, '--import', 'tsx', join(ROOT, 'src/services', party, 'main.ts')],
        {
          cwd: ROOT,
          env: {
            ...process.env,
            ...configEnv(c),
            ...(opts.demoCare ? { ZTV_DEMO_CARE: opts.demoCare } : {}),
            ...opts.env,
            ...extraEnv,
          },
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      procs.set(instance, child);
      how.set(instance, { party, env: extraEnv });
      let buf = '';
      let ready = false;
      let stderr = '';
      child.stdout!.on('data', (d: Buffer) => {
        buf += d.toString();
        for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          if (!ready && line.includes('"ready"')) {
            ready = true;
            supervisor?.watch(instance, child);
            resolve(child);
          } else {
            opts.onOutput?.(instance, line);
            if (opts.verbose) process.stderr.write(`[${instance}] ${line}\n`);
          }
        }
      });
      child.stderr!.on('data', (d: Buffer) => {
        stderr += d.toString();
        opts.onOutput?.(instance, d.toString());
        if (opts.verbose) process.stderr.write(`[${instance}] ${d.toString()}`);
      });
      child.on('exit', (code, signal) => {
        if (!ready)
          reject(
            new ZtvError(
              'bad-input',
              `${instance} stopped before listening (${signal ?? code}): ${stderr.trim().split('\n').slice(-3).join(' | ')}`,
            ),
          );
      });
    });

  const kill = async (instance: string, signal: NodeJS.Signals = 'SIGTERM') => {
    supervisor?.release(instance);
    const p = procs.get(instance);
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      p.once('exit', () => resolve());
      p.kill(signal);
    });
  };

  // A test runner or `npm start` that dies without calling stop() must not leave services holding
  // ports and data directories: the children are killed with the parent (exit handlers run
  // synchronously, so a signal is all that can be sent).
  const orphanGuard = (): void => {
    for (const p of procs.values())
      if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  };
  process.once('exit', orphanGuard);

  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      supervisor?.stop();
      process.off('exit', orphanGuard);
      await Promise.all([...procs.keys()].map((p) => kill(p)));
    })());

  if (opts.supervise)
    supervisor = new Supervisor(
      (instance, env) => {
        const h = how.get(instance)!;
        return start(h.party, { ...h.env, ...env }, instance);
      },
      async (_instance, why) => {
        await stop();
        gaveUp(why);
      },
      opts.supervise === true ? {} : opts.supervise,
    );

  try {
    await start('authority');
    await Promise.all([start('cloud'), start('consumer')]);
    await start('producer');
  } catch (e) {
    supervisor?.stop();
    process.off('exit', orphanGuard);
    for (const p of procs.values()) p.kill('SIGKILL');
    throw e;
  }
  return {
    config: c,
    urls: urls(c),
    secrets,
    start,
    kill,
    stop,
    status: () => supervisor?.status() ?? {},
    process: (instance) => procs.get(instance),
    failed,
  };
}
