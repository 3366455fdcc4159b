/**
 * The cloud as several processes, one per core (node:cluster). A clinician's session lives in the
 * memory of the process that opened it (its keys and sequence numbers), so the workers do not share
 * the public port: the primary listens on it and routes each request — a session's messages to the
 * worker that holds the session (the first byte of every session id a worker makes is its index),
 * anything else (a new session, `GET /`, a preflight) to the least busy worker — over loopback to the
 * worker's own port. The producers' mutual-TLS port is shared by the workers themselves (the
 * cluster hands each connection to one of them): an upload is one stateless request.
 *
 * Every worker is a whole cloud over the same PostgreSQL database and blob directory, the replicas of
 * `docs/services.md` ("Scale-out"): a ticket's nonce is spent in the redemption's transaction, so a
 * ticket redeems once whichever worker gets it. An SQLite file has one writer, so on SQLite the
 * cloud stays one process.
 *
 * Load shedding: each worker has at most `maxInflight` requests in flight; more wait in its queue,
 * at most `maxQueue` of them and at most `queueWaitMs` each; beyond, the answer is a clear 503
 * `busy` with `Retry-After`, never a connection left hanging. A worker that stops is started again
 * with back-off (said on stderr); one that stops 5 times within a minute stops the cloud.
 */
import cluster, { type Worker } from 'node:cluster';
import {
  Agent,
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type ServerResponse,
} from 'node:http';
import { availableParallelism } from 'node:os';
import { ZtvError } from '../../core/errors.ts';
import { SESSION_BODY_LIMITS } from '../common/session.ts';

/** The environment variable that gives a worker its index. */
const INDEX_ENV = 'ZTV_CLOUD_WORKER_INDEX';
const READY = 'ztv-cloud-worker-ready';
/** A session message is at most this long (the session plugin's own limit, with room for JSON). */
const MAX_SESSION_BODY = SESSION_BODY_LIMITS.sealed + 1024;
const SESSION_ID = /^[0-9a-f]{32}$/;

/**
 * How many cloud processes to run: `ZTV_CLOUD_WORKERS` is a number, or `auto` for one per core on
 * PostgreSQL and one on SQLite; unset, one. More than one needs PostgreSQL.
 */
export function cloudWorkerCount(
  env: Readonly<Record<string, string | undefined>>,
  databaseUrl: string | undefined,
): number {
  const postgres = !!databaseUrl && /^postgres(ql)?:\/\//.test(databaseUrl);
  const v = env.ZTV_CLOUD_WORKERS ?? '1';
  if (v === 'auto') return postgres ? Math.min(availableParallelism(), 32) : 1;
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < 1 || n > 32)
    throw new ZtvError('bad-input', 'ZTV_CLOUD_WORKERS must be "auto" or a number from 1 to 32');
  if (n > 1 && !postgres)
    throw new ZtvError(
      'bad-input',
      'ZTV_CLOUD_WORKERS above 1 needs PostgreSQL (DATABASE_URL): an SQLite file has one writer',
    );
  return n;
}

/** In a cloud worker, its index (the first byte of its session ids); undefined in a lone cloud. */
export function cloudWorkerIndex(): number | undefined {
  const v = process.env[INDEX_ENV];
  return cluster.isWorker && v !== undefined ? Number(v) : undefined;
}

/** A worker tells the primary that it listens, and on which loopback port. */
export function cloudWorkerReady(port: number): void {
  process.send?.({ type: READY, port });
}

export interface CloudPrimaryOptions {
  readonly workers: number;
  readonly host: string;
  readonly port: number;
  /** Origins whose browsers may read the primary's own 503 answers (the consumer's viewer). */
  readonly corsOrigins?: readonly string[];
  /** Requests in flight per worker (default 32). */
  readonly maxInflight?: number;
  /** Requests waiting per worker (default 128). */
  readonly maxQueue?: number;
  /** How long a request may wait for its worker (default 10 s). */
  readonly queueWaitMs?: number;
}

interface Waiting {
  readonly go: () => void;
  readonly timer: NodeJS.Timeout;
}

interface Slot {
  readonly index: number;
  worker?: Worker;
  port?: number;
  inflight: number;
  readonly queue: Waiting[];
  /** When it stopped lately (to give up on one that keeps stopping). */
  readonly stops: number[];
}

export interface CloudPrimary {
  readonly port: number;
  /** Per worker: its process id and requests in flight and waiting (for the load bench). */
  state(): { pid?: number; inflight: number; waiting: number }[];
  close(): Promise<void>;
}

/** Starts the workers (each runs the migrations and the sweep), then listens. */
export async function runCloudPrimary(opts: CloudPrimaryOptions): Promise<CloudPrimary> {
  const maxInflight = opts.maxInflight ?? 32;
  const maxQueue = opts.maxQueue ?? 128;
  const queueWaitMs = opts.queueWaitMs ?? 10_000;
  const slots: Slot[] = Array.from({ length: opts.workers }, (_, index) => ({
    index,
    inflight: 0,
    queue: [],
    stops: [],
  }));
  let closing = false;
  let started = false;
  let rr = 0;

  const fork = (slot: Slot): Promise<void> =>
    new Promise((resolve, reject) => {
      const w = cluster.fork({ [INDEX_ENV]: String(slot.index) });
      slot.worker = w;
      let ready = false;
      w.on('message', (m: { type?: string; port?: number }) => {
        if (m?.type !== READY || typeof m.port !== 'number') return;
        ready = true;
        slot.port = m.port;
        if (slot.stops.length) process.stderr.write(`cloud: worker ${slot.index} is back\n`);
        drain(slot);
        resolve();
      });
      w.on('exit', (code, signal) => {
        slot.worker = undefined;
        slot.port = undefined;
        if (closing) return;
        if (!ready && slot.stops.length === 0 && !started) {
          reject(
            new Error(`cloud worker ${slot.index} stopped while starting (${signal ?? code})`),
          );
          return;
        }
        restart(slot, signal ?? String(code));
      });
    });

  const restart = (slot: Slot, why: string): void => {
    const now = Date.now();
    slot.stops.push(now);
    while (slot.stops.length && now - slot.stops[0]! > 60_000) slot.stops.shift();
    if (slot.stops.length >= 5) {
      process.stderr.write(
        `cloud: worker ${slot.index} stopped ${slot.stops.length} times within a minute (${why}); stopping the cloud\n`,
      );
      void close().finally(() => process.exit(1));
      return;
    }
    const delay = Math.min(30_000, 250 * 2 ** slot.stops.length);
    process.stderr.write(
      `cloud: worker ${slot.index} stopped (${why}); starting it again in ${delay} ms\n`,
    );
    setTimeout(() => {
      if (!closing) fork(slot).catch(() => undefined);
    }, delay).unref();
  };

  /** Lets waiting requests through while the worker has room. */
  const drain = (slot: Slot): void => {
    while (slot.port !== undefined && slot.inflight < maxInflight && slot.queue.length) {
      const w = slot.queue.shift()!;
      clearTimeout(w.timer);
      w.go();
    }
  };

  /** The primary's own answer, in the services' JSON error shape (readable by the viewer). */
  const answer = (
    req: IncomingMessage,
    res: ServerResponse,
    status: number,
    body: { error: string; message: string },
    extra: OutgoingHttpHeaders = {},
  ): void => {
    const headers: OutgoingHttpHeaders = {
      'content-type': 'application/json; charset=utf-8',
      'cache-control': 'no-store',
      ...extra,
    };
    const origin = req.headers.origin;
    if (origin && opts.corsOrigins?.includes(origin)) {
      headers['access-control-allow-origin'] = origin;
      headers.vary = 'Origin';
    }
    res.writeHead(status, headers);
    res.end(JSON.stringify(body));
  };
  const busy = (req: IncomingMessage, res: ServerResponse, why: string): void =>
    answer(
      req,
      res,
      503,
      { error: 'busy', message: `the cloud is at capacity (${why}); retry` },
      { 'retry-after': '1' },
    );

  const agent = new Agent({ keepAlive: true });

  const forward = (slot: Slot, req: IncomingMessage, res: ServerResponse, body?: Buffer): void => {
    slot.inflight++;
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      slot.inflight--;
      drain(slot);
    };
    res.once('close', release);
    const headers = { ...req.headers };
    delete headers.connection;
    delete headers['keep-alive'];
    if (body) {
      delete headers['transfer-encoding'];
      headers['content-length'] = String(body.length);
    }
    const up = httpRequest(
      {
        host: '127.0.0.1',
        port: slot.port,
        method: req.method,
        path: req.url,
        headers,
        agent,
      },
      (answer) => {
        const h = { ...answer.headers };
        delete h.connection;
        delete h['keep-alive'];
        res.writeHead(answer.statusCode ?? 502, h);
        answer.pipe(res);
        answer.once('error', () => res.destroy());
      },
    );
    up.once('error', () => {
      if (!res.headersSent) busy(req, res, `worker ${slot.index} stopped`);
      else res.destroy();
    });
    // The client went away: stop the worker's answer too (a retrieval stops streaming).
    res.once('close', () => {
      if (!res.writableFinished) up.destroy();
    });
    if (body) up.end(body);
    else req.pipe(up);
  };

  const admit = (slot: Slot, req: IncomingMessage, res: ServerResponse, body?: Buffer): void => {
    if (slot.port !== undefined && slot.inflight < maxInflight && !slot.queue.length) {
      forward(slot, req, res, body);
      return;
    }
    if (slot.queue.length >= maxQueue) {
      busy(req, res, 'too many requests waiting');
      return;
    }
    const waiting: Waiting = {
      go: () => forward(slot, req, res, body),
      timer: setTimeout(() => {
        const i = slot.queue.indexOf(waiting);
        if (i >= 0) slot.queue.splice(i, 1);
        busy(req, res, `waited ${queueWaitMs} ms`);
      }, queueWaitMs),
    };
    slot.queue.push(waiting);
    // A client that gives up while waiting leaves the queue.
    res.once('close', () => {
      const i = slot.queue.indexOf(waiting);
      if (i >= 0) {
        slot.queue.splice(i, 1);
        clearTimeout(waiting.timer);
      }
    });
  };

  /** The least busy worker, ties broken in turn. */
  const anyWorker = (): Slot => {
    let best = slots[rr++ % slots.length]!;
    for (const s of slots) {
      const load = (x: Slot) => (x.port === undefined ? 1e9 : x.inflight + x.queue.length);
      if (load(s) < load(best)) best = s;
    }
    return best;
  };

  const server = createServer((req, res) => {
    const sessionBound =
      req.method === 'POST' && req.url?.startsWith('/session/') && req.url !== '/session/connect';
    if (!sessionBound) {
      admit(anyWorker(), req, res);
      return;
    }
    // A session's message goes where its session lives: read the (small) body for its id.
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > MAX_SESSION_BODY) {
      admit(anyWorker(), req, res); // the worker refuses it by its declared length, unread
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (d: Buffer) => {
      size += d.length;
      if (size > MAX_SESSION_BODY) {
        req.destroy();
        return;
      }
      chunks.push(d);
    });
    req.once('end', () => {
      const body = Buffer.concat(chunks);
      let slot: Slot | undefined;
      try {
        const id = (JSON.parse(body.toString('utf8')) as { sessionId?: unknown })?.sessionId;
        if (typeof id === 'string' && SESSION_ID.test(id))
          slot = slots[parseInt(id.slice(0, 2), 16)];
      } catch {
        /* not JSON: the worker answers it */
      }
      // The worker that held the session stopped: its sessions went with it (the session layer's
      // own answer, so that the client opens a new one at once rather than wait for the restart).
      if (slot && (!slot.worker || slot.worker.isDead() || slot.port === undefined))
        answer(req, res, 401, {
          error: 'unknown-session',
          message: 'no such session (its cloud worker stopped)',
        });
      else admit(slot ?? anyWorker(), req, res, body);
    });
  });

  // Together: PostgreSQL serialises their migrations (Kysely's lock), the sweep spares young blobs.
  await Promise.all(slots.map(fork));
  started = true;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: opts.host, port: opts.port }, () => resolve());
  });

  const close = async (): Promise<void> => {
    if (closing) return;
    closing = true;
    server.close();
    server.closeAllConnections();
    for (const s of slots) for (const w of s.queue.splice(0)) clearTimeout(w.timer);
    await Promise.all(
      slots.map(
        (s) =>
          new Promise<void>((resolve) => {
            const w = s.worker;
            if (!w || w.isDead()) return resolve();
            const kill = setTimeout(() => w.process.kill('SIGKILL'), 10_000);
            w.once('exit', () => {
              clearTimeout(kill);
              resolve();
            });
            w.process.kill('SIGTERM');
          }),
      ),
    );
    agent.destroy();
  };

  return {
    port: (server.address() as { port: number }).port,
    state: () =>
      slots.map((s) => ({
        ...(s.worker?.process.pid ? { pid: s.worker.process.pid } : {}),
        inflight: s.inflight,
        waiting: s.queue.length,
      })),
    close,
  };
}
