/**
 * The crash campaign (issue 17): `kill -9` of each service of a supervised federation (what
 * `npm start` runs) during outsourcing and during consultation, redemption and retrieval, on SQLite
 * and on PostgreSQL — at a random moment (a seeded timer within the phase's usual duration), and at
 * the named fault points of the write paths (`src/services/common/faults.ts`, armed trial by trial
 * through `ZTV_FAULT_TRIGGERS`: the service stops dead there and is killed there). After each trial,
 * once the killed service is back: every instance the producer acknowledged is stored once at the
 * cloud and opens intact; what it did not acknowledge is resent until stored; no partial record (an
 * instance pending at the producer, a redemption without its items, a cloud row without its blob);
 * no orphaned blob once the restarted cloud swept; every party's audit chain intact; every retrieval
 * complete (resumed when cut, redeemed again with a new ticket when the redemption itself was cut),
 * each instance verified with its trace.
 *
 * `crashTrials(n, postgres)` runs the trials; `crashSection` the report's section. The short slice in
 * `npm test` is test/reliability-crash.test.ts.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { toHex } from '../../src/core/bytes.ts';
import { verifyChain } from '../../src/core/audit/verify.ts';
import { checkpointKeys } from '../../src/core/audit/trail.ts';
import { stowInstances } from '../../src/core/client/stow.ts';
import { sha256 } from '../../src/core/crypto/hash.ts';
import { pkiResolver } from '../../src/core/pki/resolver.ts';
import { inspectProtected, openProtected } from '../../src/core/protect/index.ts';
import type { PartyName } from '../../src/services/common/config.ts';
import { faultTrigger, type FaultPoint } from '../../src/services/common/faults.ts';
import { readStoredChain } from '../../src/services/storage/audit-reader.ts';
import { FileBlobStore } from '../../src/services/storage/blobs.ts';
import { PG_URL } from '../../test/databases.ts';
import { prng } from '../../test/keys.ts';
import { startTestFederation, type TestFederation } from '../../test/federation.ts';
import { sampleFiles } from '../../test/samples.ts';

export const SERVICES: readonly PartyName[] = ['producer', 'cloud', 'consumer', 'authority'];
export type Phase = 'outsourcing' | 'retrieval';
/** How the kill is timed: a random timer, or the moment the service stops at a named fault point. */
export type How = 'timer' | FaultPoint;
export interface Kill {
  readonly service: PartyName;
  readonly phase: Phase;
  readonly how: How;
}

/** The named fault points on the way of each service's phase (the others have none). */
export const POINTS: Partial<Record<`${PartyName} during ${Phase}`, FaultPoint[]>> = {
  'producer during outsourcing': ['producer:before-cloud-upload'],
  'cloud during outsourcing': ['cloud:after-blob-write'],
  'cloud during retrieval': ['cloud:before-redemption-commit', 'cloud:mid-retrieval'],
};

export interface CrashFigures {
  readonly dialect: 'sqlite' | 'postgres';
  trials: number;
  /**
   * Trials by service, phase and how the kill was timed, those whose kill landed while the operation
   * ran, and (fault points) those whose operation finished without reaching the point.
   */
  readonly by: Record<string, { kill: Kill; trials: number; midOperation: number; missed: number }>;
  restarts: number;
  acknowledged: number;
  resent: number;
  lost: number;
  duplicated: number;
  unverified: number;
  partial: number;
  orphans: number;
  chainBreaks: number;
  retrievals: number;
  resumedOrRetried: number;
  incompleteRetrievals: number;
  /** Sentences for each defect seen (empty when all held). */
  readonly defects: string[];
  seconds: number;
}

interface CloudRows {
  instances: { id: string; digest: string };
  redemptions: { id: string; ticket: string };
  redemption_items: { redemption: string; position: number; image: string };
}
interface ProducerRows {
  instances: { source_digest: string; status: string; cloud_id: string | null };
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Retries `op` (a service may be restarting) until it succeeds or `ms` passed. */
async function persist<T>(op: () => Promise<T>, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  for (let wait = 200; ; wait = Math.min(wait * 2, 3000)) {
    try {
      return await op();
    } catch (e) {
      if (Date.now() + wait > end) throw e;
      await pause(wait);
    }
  }
}

/**
 * Each service in turn during outsourcing, then each during retrieval, and again; each visit of a
 * service and phase with fault points takes the next of: a random timer, then each point in turn.
 */
export const cycle = (i: number): Kill => {
  const service = SERVICES[i % SERVICES.length]!;
  const phase: Phase = Math.floor(i / SERVICES.length) % 2 === 0 ? 'outsourcing' : 'retrieval';
  const hows: How[] = ['timer', ...(POINTS[`${service} during ${phase}`] ?? [])];
  return { service, phase, how: hows[Math.floor(i / (2 * SERVICES.length)) % hows.length]! };
};

/**
 * `n` trials on one federation, each service killed in turn during each phase in turn, at a random
 * moment within the phase's usual duration.
 */
export async function crashTrials(
  n: number,
  postgres: boolean,
  seed = 17,
  log: (line: string) => void = () => undefined,
  /** Which service to kill in which phase and how, trial by trial (default: `cycle`). */
  plan: (i: number) => Kill = cycle,
  /** No trial starts after this time (ms since the epoch): the campaign stops short, and says so. */
  deadline = Infinity,
): Promise<CrashFigures> {
  const started = Date.now();
  const rnd = prng(seed);
  const f: CrashFigures = {
    dialect: postgres ? 'postgres' : 'sqlite',
    trials: 0,
    by: {},
    restarts: 0,
    acknowledged: 0,
    resent: 0,
    lost: 0,
    duplicated: 0,
    unverified: 0,
    partial: 0,
    orphans: 0,
    chainBreaks: 0,
    retrievals: 0,
    resumedOrRetried: 0,
    incompleteRetrievals: 0,
    defects: [],
    seconds: 0,
  };
  const pool = [
    ...sampleFiles('series/ct_chest_LIDC-IDRI-0314').slice(3),
    ...sampleFiles('series/mr_brain_mprage_FNNDSC-adi'),
  ];
  let next = 0;
  const triggers = mkdtempSync(join(tmpdir(), 'ztv-faults-'));
  const t = await startTestFederation({
    slices: 3,
    postgres,
    // The kills are many and on purpose: the supervisor must never give up here.
    supervise: { backoffMs: [100, 500, 1000], maxDeaths: 1_000_000 },
    env: { ZTV_ORPHAN_MIN_AGE_MS: '0', ZTV_FAULT_TRIGGERS: triggers },
  });
  try {
    const bob = await t.clinician('dr.bob');
    const defect = (s: string) => {
      f.defects.push(s);
      log(`DEFECT ${s}`);
    };
    for (let i = 0; i < n && Date.now() < deadline; i++) {
      const k = plan(i);
      const { service, phase, how } = k;
      const key = `${service} during ${phase}${how === 'timer' ? '' : ` at ${how}`}`;
      const by = (f.by[`${service}|${phase}|${how}`] ??= {
        kill: k,
        trials: 0,
        midOperation: 0,
        missed: 0,
      });
      const restartsBefore = t.fed.status()[service]?.restarts ?? 0;
      const delay = Math.floor(rnd() * (phase === 'outsourcing' ? 1500 : 2500));
      let running = true;
      let killedMid = false;
      let ended!: () => void;
      const done = new Promise<void>((r) => (ended = r));
      const finished = () => {
        running = false;
        ended();
      };
      let moment: Promise<unknown>;
      if (how === 'timer') moment = pause(delay);
      else {
        // Armed for this trial only: the first request to reach the point takes the trigger and the
        // service stops dead there; an operation that never reaches it ends, and the kill follows.
        t.output.delete(service);
        writeFileSync(faultTrigger(triggers, how), '');
        const at = new RegExp(`"fault":"${how}"`);
        moment = Promise.race([
          t.waitFor(service, at, 180_000).then(
            () => true,
            () => false,
          ),
          done.then(() => false),
        ]).then((reached) => {
          if (reached) return;
          by.missed++;
          rmSync(faultTrigger(triggers, how), { force: true });
        });
      }
      const kill = moment.then(() => {
        killedMid = running;
        process.kill(t.fed.process(service)!.pid!, 'SIGKILL');
      });
      if (phase === 'outsourcing') {
        const batch = pool.slice(next, next + 5);
        next = (next + 5) % pool.length;
        const acked = await outsourceTrial(t, batch).finally(finished);
        await kill;
        await backUp(t, service, restartsBefore);
        f.acknowledged += acked.length;
        // Resend until the producer acknowledged every instance of the batch.
        const rest = await persist(async () => {
          const r = await stowInstances(t.fed.urls.producer, t.fed.secrets.stowToken, files(batch));
          if (r.failed.length) throw new Error(r.failed.join('; '));
          return r;
        }).catch((e: unknown) => {
          defect(`${key}: the batch could not be resent: ${(e as Error).message}`);
          return undefined;
        });
        if (rest) f.resent += batch.length - acked.length;
        const held = await atTheCloud(t, batch);
        for (const [file, state] of held)
          if (state !== 'stored once, intact') {
            if (acked.includes(file) || rest) {
              if (state === 'missing') f.lost++;
              else if (state === 'duplicated') f.duplicated++;
              else f.unverified++;
              defect(`${key}: ${file.split('/').pop()} ${state}`);
            }
          }
      } else {
        f.retrievals++;
        const r = await retrievalTrial(t, bob).finally(finished);
        await kill;
        await backUp(t, service, restartsBefore);
        if (r.retried) f.resumedOrRetried++;
        if (!r.complete) {
          f.incompleteRetrievals++;
          defect(`${key}: ${r.why}`);
        }
      }
      by.trials++;
      if (killedMid) by.midOperation++;
      f.trials++;
      f.restarts += (t.fed.status()[service]?.restarts ?? 0) - restartsBefore;
      const inv = await invariants(t);
      f.partial += inv.partial;
      f.orphans += service === 'cloud' ? inv.orphans : 0;
      f.chainBreaks += inv.chainBreaks;
      for (const s of inv.defects) defect(`${key}: ${s}`);
      log(
        `trial ${i + 1}/${n} ${f.dialect}: kill -9 ${key}${how === 'timer' ? ` at ${delay} ms` : ''}${killedMid ? ' (mid-operation)' : ''}`,
      );
    }
  } finally {
    await t.close();
    rmSync(triggers, { recursive: true, force: true });
  }
  f.seconds = (Date.now() - started) / 1000;
  return f;
}

const files = (batch: readonly string[]) =>
  batch.map((name) => ({ name, bytes: new Uint8Array(readFileSync(name)) }));

/** One STOW-RS request for the batch: the files the producer acknowledged (none if it died). */
async function outsourceTrial(t: TestFederation, batch: readonly string[]): Promise<string[]> {
  try {
    const r = await stowInstances(t.fed.urls.producer, t.fed.secrets.stowToken, files(batch));
    const refused = new Set(r.failed.map((m) => m.slice(0, m.indexOf(': '))));
    return batch.filter((f) => !refused.has(f));
  } catch {
    return [];
  }
}

/** Waits until the killed service was restarted and listens again. */
async function backUp(t: TestFederation, service: string, restartsBefore: number): Promise<void> {
  const end = Date.now() + 120_000;
  for (;;) {
    const s = t.fed.status()[service];
    if (s?.state === 'up' && s.restarts > restartsBefore) return;
    if (Date.now() > end) throw new Error(`${service} did not come back in 120 s`);
    await pause(100);
  }
}

/** Where each file of the batch stands at the cloud, through the producer's record of it. */
async function atTheCloud(
  t: TestFederation,
  batch: readonly string[],
): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const p = await t.database<ProducerRows>('producer');
  const c = await t.database<CloudRows>('cloud');
  const blobs = new FileBlobStore(join(t.dir, 'cloud', 'blobs'));
  try {
    for (const file of batch) {
      const digest = toHex(sha256(new Uint8Array(readFileSync(file))));
      const rows = await p.db
        .selectFrom('instances')
        .selectAll()
        .where('source_digest', '=', digest)
        .execute();
      const row = rows[0];
      if (rows.length !== 1 || row?.status !== 'done' || !row.cloud_id) {
        out.set(file, rows.length > 1 ? 'duplicated' : 'missing');
        continue;
      }
      const stored = await c.db
        .selectFrom('instances')
        .selectAll()
        .where('id', '=', row.cloud_id)
        .execute();
      if (stored.length !== 1) {
        out.set(file, stored.length ? 'duplicated' : 'missing');
        continue;
      }
      const bytes = await blobs.get(stored[0]!.id).catch(() => undefined);
      const intact =
        !!bytes &&
        toHex(sha256(bytes)) === stored[0]!.digest &&
        inspectProtected(bytes, 'the stored instance').intact;
      out.set(file, intact ? 'stored once, intact' : 'not intact');
    }
  } finally {
    await p.close();
    await c.close();
  }
  return out;
}

/**
 * Consult, open the keys, redeem and retrieve the CT study, every instance opened and verified with
 * its trace; a consultation or redemption that fails (its party died) is tried again with a new
 * ticket, a cut retrieval resumes (the client does it).
 */
async function retrievalTrial(
  t: TestFederation,
  bob: Awaited<ReturnType<TestFederation['clinician']>>,
): Promise<{ complete: boolean; retried: boolean; why?: string }> {
  let retried = false;
  const end = Date.now() + 120_000;
  for (;;) {
    try {
      const c = await bob.client.consult({
        patient: t.ctPatient,
        purpose: 'TREAT',
        roleAssignments: bob.roleAssignments,
      });
      const keys = await bob.client.openKeys(c.ticket, t.resolveProducer);
      const red = await bob.client.redeem(c.ticket);
      const resolver = pkiResolver(await t.trust());
      const seen = new Set<string>();
      for await (const got of bob.client.retrieve(red.redemption)) {
        if (seen.has(got.id)) return { complete: false, retried, why: `${got.id} came twice` };
        seen.add(got.id);
        const opened = await openProtected(got.bytes, { resolver, imageKey: keys.get(got.id)! });
        if (opened.verdict.status !== 'verified' || opened.verdict.trace?.id !== c.trace)
          return { complete: false, retried, why: `${got.id} did not verify with its trace` };
      }
      if (seen.size !== red.images.length)
        return {
          complete: false,
          retried,
          why: `${seen.size} of ${red.images.length} instances arrived`,
        };
      return { complete: true, retried };
    } catch (e) {
      retried = true;
      if (Date.now() > end)
        return { complete: false, retried, why: `no retrieval in 120 s: ${(e as Error).message}` };
      await pause(500);
    }
  }
}

/** Partial records, orphaned blobs and chain breaks, as the databases and the disk hold them now. */
async function invariants(
  t: TestFederation,
): Promise<{ partial: number; orphans: number; chainBreaks: number; defects: string[] }> {
  const defects: string[] = [];
  const p = await t.database<ProducerRows>('producer');
  const c = await t.database<CloudRows>('cloud');
  let partial = 0;
  let orphans: number;
  try {
    const pending = await p.db
      .selectFrom('instances')
      .select('source_digest')
      .where('status', '!=', 'done')
      .execute();
    if (pending.length) defects.push(`${pending.length} instance(s) still pending at the producer`);
    partial += pending.length;
    const rows = await c.db.selectFrom('instances').select('id').execute();
    const ids = new Set(rows.map((r) => r.id));
    const blobs = await new FileBlobStore(join(t.dir, 'cloud', 'blobs')).list();
    const missing = rows.filter((r) => !blobs.includes(r.id)).length;
    if (missing) defects.push(`${missing} cloud row(s) without their blob`);
    partial += missing;
    orphans = blobs.filter((b) => !ids.has(b)).length;
    if (orphans) defects.push(`${orphans} orphaned blob(s)`);
    const empty = await c.db
      .selectFrom('redemptions')
      .leftJoin('redemption_items', 'redemption_items.redemption', 'redemptions.id')
      .select('redemptions.id')
      .where('redemption_items.redemption', 'is', null)
      .execute();
    if (empty.length) defects.push(`${empty.length} redemption(s) without their items`);
    partial += empty.length;
  } finally {
    await p.close();
    await c.close();
  }
  let chainBreaks = 0;
  const view = await t.trust();
  for (const party of SERVICES) {
    const src =
      t.dialect === 'postgres'
        ? { url: PG_URL, schema: `${t.schemaPrefix}_${party}` }
        : { file: join(t.dir, party, `${party}.sqlite`) };
    const chain = await readStoredChain(src, party);
    const r = await verifyChain(
      party,
      chain.records,
      chain.checkpoints,
      checkpointKeys(view, party),
    );
    if (!r.ok) defects.push(`${party}'s audit chain: ${r.breaks.length} break(s)`);
    chainBreaks += r.breaks.length;
  }
  return { partial, orphans, chainBreaks, defects };
}

/**
 * The report's section: the trials per database, service, phase and how the kill was timed, the
 * totals of each check, what each means. `trials` per database (the issue's scale: 100 of each
 * service in each phase, 800); `minutes`, if given, bounds the whole campaign: each database gets
 * half, and the section says how many trials ran, and how long the rest would take.
 */
export async function crashSection(
  trials: number,
  log: (line: string) => void = (l) => console.log(l),
  minutes = Infinity,
): Promise<{ markdown: string; defects: number }> {
  const runs: CrashFigures[] = [];
  const load = [loadavg()[0]!];
  const started = Date.now();
  for (const postgres of [false, true]) {
    const share = started + (minutes * 60_000 * (postgres ? 2 : 1)) / 2;
    runs.push(await crashTrials(trials, postgres, 17, log, cycle, share));
  }
  load.push(loadavg()[0]!);
  const defects = runs.reduce((k, r) => k + r.defects.length, 0);
  const rows = runs.flatMap((r) =>
    Object.values(r.by)
      .sort(
        (a, b) =>
          SERVICES.indexOf(a.kill.service) - SERVICES.indexOf(b.kill.service) ||
          a.kill.phase.localeCompare(b.kill.phase) ||
          a.kill.how.localeCompare(b.kill.how),
      )
      .map(
        (v) =>
          `| ${r.dialect} | ${v.kill.service} | ${v.kill.phase} | ${v.kill.how === 'timer' ? 'random timer' : `fault point \`${v.kill.how}\``} | ${v.trials} | ${v.midOperation} | ${v.kill.how === 'timer' ? '' : v.missed} |`,
      ),
  );
  const total = (k: keyof CrashFigures) =>
    runs.map((r) => `${r.dialect} ${String(r[k])}`).join(', ');
  const short = runs.filter((r) => r.trials < trials);
  const perTrial = (r: CrashFigures) => r.seconds / Math.max(1, r.trials);
  return {
    defects,
    markdown: [
      '## Crash campaign',
      '',
      `\`kill -9\` (SIGKILL from outside the launcher) of each service of a supervised federation, in turn, ` +
        'during outsourcing (a STOW-RS request of 5 instances) and during consultation, redemption and ' +
        'retrieval of the CT study (3 slices): at a random moment (a seeded timer within the ' +
        "phase's usual duration), or, for the cloud and the producer, at a named fault point of the " +
        'write path (`src/services/common/faults.ts`), armed for that trial only: the service stops ' +
        'dead there and is killed there. Each visit of a service and phase takes the next of: the ' +
        'timer, then each of its points. The supervisor restarts the killed service; after each ' +
        'trial every check below is made. ' +
        `${runs.map((r) => `${r.dialect}: ${r.trials} trials in ${(r.seconds / 60).toFixed(1)} min (${perTrial(r).toFixed(0)} s each)`).join('; ')}; ` +
        `load average ${load.map((l) => l.toFixed(1)).join(' at the start, ')} at the end.`,
      '',
      ...(short.length
        ? [
            `**Short of the issue's scale**: ${trials} trials per database were asked (100 per service and ` +
              `phase), the time given (${minutes} min) ran ${short.map((r) => `${r.trials} on ${r.dialect}`).join(' and ')}. ` +
              `The full campaign is \`ZTV_RELIABILITY_PARTS=crash npm run bench -- reliability\`; at the ` +
              `times per trial above it takes about ${(runs.reduce((h, r) => h + perTrial(r) * trials, 0) / 3600).toFixed(0)} h on this machine.`,
            '',
          ]
        : []),
      '| database | killed | during | kill timed by | trials | kill landed mid-operation | point not reached |',
      '| -------- | ------ | ------ | ------------- | -----: | ------------------------: | ----------------: |',
      ...rows,
      '',
      '_point not reached_: the operation ended without passing the point (an outsourcing whose ' +
        'instances the cloud already holds uploads nothing), and the kill came after it.',
      '',
      '| check | result |',
      '| ----- | ------ |',
      `| restarts by the supervisor | ${total('restarts')} |`,
      `| instances acknowledged by the producer while killed | ${total('acknowledged')} |`,
      `| instances not acknowledged, resent and then stored | ${total('resent')} |`,
      `| acknowledged or resent instances lost at the cloud | ${total('lost')} |`,
      `| stored twice | ${total('duplicated')} |`,
      `| stored but not intact (digest, seal) | ${total('unverified')} |`,
      `| partial records (pending at the producer, row without blob, redemption without items) | ${total('partial')} |`,
      `| orphaned blobs after the restarted cloud's sweep | ${total('orphans')} |`,
      `| audit chain breaks (all four parties, after every trial) | ${total('chainBreaks')} |`,
      `| retrievals (each instance verified with its trace) | ${total('retrievals')} |`,
      `| of which consulted and redeemed again after the kill (a cut stream resumes inside the client, unseen here) | ${total('resumedOrRetried')} |`,
      `| retrievals that did not complete | ${total('incompleteRetrievals')} |`,
      '',
      defects
        ? `Defects:\n\n${runs.flatMap((r) => r.defects.map((d) => `- ${r.dialect}: ${d}`)).join('\n')}`
        : 'No defect: every check held after every trial.',
      '',
    ].join('\n'),
  };
}
