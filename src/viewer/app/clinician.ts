/**
 * A signed-in clinician on this device: the hospital's sign-in token (memory only), the device
 * identity from IndexedDB, the pinned trust (main thread and every decode worker), the federation
 * client with its sessions, the decode pool, and the studies opened. Everything here is forgotten at
 * sign-out; nothing is written to localStorage, the URL or the console.
 */
import { jsonText, searchBoxQueries } from '../../core/operations/qido.ts';
import {
  FederationClient,
  fetchTrustMaterial,
  trustView,
  type ConsultAnswer,
  type ConsultRequest,
  type Endpoints,
  type TrustMaterial,
} from '../../core/client/federation.ts';
import type { PkiView } from '../../core/pki/resolver.ts';
import { X509Certificate } from '../../core/pki/x509.ts';
import { toHex } from '../../core/bytes.ts';
import { enrol, loadIdentity, type DeviceIdentity } from '../device/keystore.ts';
import { defaultPoolSize, WorkerPool, type WorkerLike } from '../pipeline/pool.ts';
import { StreamWorker, type StreamWorkerLike } from '../pipeline/stream.ts';
import { StudySession } from '../study/session.ts';
import { checkEnrolmentChain, choosePin, type Pin } from '../trust/pin.ts';

export interface Clinician {
  readonly id: string;
  readonly name: string;
  readonly role: string;
  readonly hospital: string;
}

export interface SignIn {
  readonly endpoints: Endpoints;
  readonly token: string;
  readonly clinician: Clinician;
}

export type StudyListing = Awaited<ReturnType<FederationClient['search']>>['studies'];

/** Validates the viewer configuration the hospital serves at /config.json. */
export function checkConfig(c: unknown): Endpoints {
  const o = c as Partial<Record<keyof Endpoints, unknown>>;
  const url = (v: unknown, name: string): string => {
    if (typeof v !== 'string') throw new Error(`the viewer configuration has no ${name} address`);
    const u = new URL(v);
    if (u.protocol !== 'http:' && u.protocol !== 'https:')
      throw new Error(`the ${name} address is not http(s)`);
    return u.origin;
  };
  return {
    consumer: url(o?.consumer, 'consumer'),
    producer: url(o?.producer, 'producer'),
    cloud: url(o?.cloud, 'cloud'),
  };
}

export async function loadConfig(): Promise<Endpoints> {
  const r = await fetch('/config.json', { cache: 'no-store' });
  if (!r.ok) throw new Error(`the hospital serves no viewer configuration (${r.status})`);
  return checkConfig(await r.json());
}

/** The decode workers: one per core (`defaultPoolSize`). */
export function startPool(): WorkerPool {
  const size = defaultPoolSize(navigator.hardwareConcurrency || 2);
  return new WorkerPool(
    () =>
      new Worker(new URL('../pipeline/decode.worker.ts', import.meta.url), {
        type: 'module',
        name: 'ztv-decode',
      }) as unknown as WorkerLike,
    size,
  );
}

/** The stream worker: the cloud's sealed frames are opened there, not on the page's thread. */
const startStreamWorker = (): StreamWorker =>
  new StreamWorker(
    () =>
      new Worker(new URL('../pipeline/stream.worker.ts', import.meta.url), {
        type: 'module',
        name: 'ztv-stream',
      }) as unknown as StreamWorkerLike,
  );

/** The device's identity for this clinician, if this browser was enrolled for them. */
export const deviceOf = (clinicianId: string): Promise<DeviceIdentity | undefined> =>
  loadIdentity(clinicianId);

/** Enrols this browser for the signed-in clinician, pinning the federation root it is enrolled under. */
export async function enrolDevice(s: SignIn): Promise<DeviceIdentity> {
  const material = await fetchTrustMaterial(s.endpoints.consumer);
  const pin = await choosePin(material, undefined);
  return enrol(
    async (csr) => {
      const r = await FederationClient.enrolDevice(s.endpoints.consumer, s.token, csr);
      await checkEnrolmentChain(material, r.chain);
      return r;
    },
    s.clinician.id,
    pin.sha256,
  );
}

export class ClinicianSession {
  private study?: StudySession;

  private constructor(
    readonly signIn: SignIn,
    readonly identity: DeviceIdentity,
    readonly pin: Pin,
    readonly deviceId: string,
    private readonly material: TrustMaterial,
    private readonly view: PkiView,
    readonly client: FederationClient,
    readonly pool: WorkerPool,
    private readonly streams: StreamWorker,
    private roleAssignments: string[],
  ) {}

  /** Pins and loads the trust, hands it to the workers, gets the role assignments, opens the sessions. */
  static async open(signIn: SignIn, identity: DeviceIdentity, pool: WorkerPool) {
    const material = await fetchTrustMaterial(signIn.endpoints.consumer);
    const pin = await choosePin(material, identity.rootSha256);
    const view = await trustView(material, { sha256: pin.sha256 });
    const trusted = await pool.broadcast({
      kind: 'trust',
      trust: { ...material, rootSha256: pin.sha256 },
    });
    const refused = trusted.find((r) => r.kind === 'failed');
    if (refused?.kind === 'failed') throw new Error(refused.message);
    const deviceId = toHex(
      new Uint8Array(await new X509Certificate(identity.chain[0]!).getThumbprint('SHA-256')),
    );
    const streams = startStreamWorker();
    const client = new FederationClient(
      signIn.endpoints,
      { signing: identity.signing, encryption: identity.encryption, chain: identity.chain },
      () => view,
      fetch,
      { openRetrieval: streams.open },
    );
    const roles = await client.roleAssignments(signIn.token);
    streams.start(); // loaded before the first study is asked for
    return new ClinicianSession(
      signIn,
      identity,
      pin,
      deviceId,
      material,
      view,
      client,
      pool,
      streams,
      roles,
    );
  }

  get trust(): PkiView {
    return this.view;
  }

  get trustMaterial(): TrustMaterial {
    return this.material;
  }

  /** The studies the producer's policy lets this clinician open for treatment. */
  async search(): Promise<StudyListing> {
    return (await this.client.search('TREAT', this.roleAssignments)).studies;
  }

  /**
   * The search box: the Study Instance UIDs the producer's QIDO-RS finds for a typed patient ID or
   * name, among the studies its policy lists for this clinician (the query travels sealed in the
   * session; the producer logs which keys were used, never the text).
   */
  async findStudies(text: string): Promise<Set<string>> {
    const answers = await Promise.all(
      searchBoxQueries(text).map((r) => this.client.qido(r, 'TREAT', this.roleAssignments)),
    );
    return new Set(answers.flat().map((m) => jsonText(m, 'StudyInstanceUID')));
  }

  async consult(req: Omit<ConsultRequest, 'roleAssignments'>): Promise<ConsultAnswer> {
    return this.client.consult({ ...req, roleAssignments: this.roleAssignments });
  }

  /** Opens a study from its ticket; the previous one is closed (its keys forgotten). */
  async openStudy(answer: ConsultAnswer): Promise<StudySession> {
    await this.study?.close();
    const study = new StudySession({
      client: this.client,
      pool: this.pool,
      answer,
      device: { decryptionKey: this.identity.encryption.privateKey, deviceId: this.deviceId },
      // The study viewer draws it and says when (`shown`); past this bound nothing waits for it.
      firstImageHoldMs: 500,
    });
    this.study = study;
    return study;
  }

  async closeStudy(): Promise<void> {
    await this.study?.close();
    this.study = undefined;
  }

  /** Signs out: studies closed, worker keys forgotten, sessions and sign-in ended. */
  async signOut(): Promise<void> {
    await this.closeStudy().catch(() => undefined);
    await this.pool.broadcast({ kind: 'forget' }).catch(() => undefined);
    await this.client.close().catch(() => undefined);
    this.streams.terminate();
    await FederationClient.logout(this.signIn.endpoints.consumer, this.signIn.token).catch(
      () => undefined,
    );
    this.roleAssignments = [];
  }
}
