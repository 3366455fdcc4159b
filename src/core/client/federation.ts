/**
 * The clinician's side of the protocol, for the browser viewer and for tests alike (fetch and WebCrypto
 * only): sign in to the hospital, get role assignments, open authenticated sessions with the producer
 * and the cloud, consult (receive the blind ticket), open the key part with the device's key, redeem
 * the cloud part and stream the traced instances.
 */
import { X509Certificate, X509Crl } from '../pki/x509.ts';
import type { FlattenedJWS } from 'jose';
import { parseMultipart } from '../dicom/multipart.ts';
import { ZtvError } from '../errors.ts';
import { signingKeyFromCryptoKeys } from '../crypto/keys.ts';
import { toHex } from '../bytes.ts';
import type { PkiView } from '../pki/resolver.ts';
import { verifyTrustGroup } from '../pki/trust-group.ts';
import { organisationValidator } from '../session/peers.ts';
import { SessionClient, type Post, type Sealed } from '../session/protocol.ts';
import { openKeysPart, type Ticket } from '../ticket/ticket.ts';

export interface Endpoints {
  readonly consumer: string;
  readonly producer: string;
  readonly cloud: string;
}

export interface DeviceKeys {
  readonly signing: CryptoKeyPair;
  readonly encryption: CryptoKeyPair;
  /** PEM: device certificate, hospital device CA. */
  readonly chain: readonly string[];
}

export class HttpFailure extends ZtvError {
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
  ) {
    super('bad-input', message);
  }
}

async function json(r: Response): Promise<unknown> {
  const body = (await r.json().catch(() => ({}))) as { error?: string; message?: string };
  if (!r.ok)
    throw new HttpFailure(
      r.status,
      body.error ?? 'error',
      body.message ?? `${r.url} answered ${r.status}`,
    );
  return body;
}

export const poster =
  (base: string, f: typeof fetch = fetch): Post =>
  async (path, body) =>
    json(
      await f(`${base}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      }),
    );

/** The hospital's view of the federation's trust (root, CRLs, trust group), checked against the root. */
export async function fetchTrust(
  consumer: string,
  pinnedRoot?: string,
  f: typeof fetch = fetch,
): Promise<PkiView> {
  const t = (await json(await f(`${consumer}/trust`))) as {
    root: string;
    intermediates: string[];
    organisations: string[];
    crls: string[];
    trustGroup: FlattenedJWS;
  };
  if (pinnedRoot && pinnedRoot.replace(/\s/g, '') !== t.root.replace(/\s/g, ''))
    throw new ZtvError('integrity', 'the hospital serves another root than the pinned one');
  const root = new X509Certificate(pinnedRoot ?? t.root);
  return {
    root,
    intermediates: t.intermediates.map((p) => new X509Certificate(p)),
    organisations: t.organisations.map((p) => new X509Certificate(p)),
    crls: t.crls.map((p) => new X509Crl(p)),
    trustGroup: await verifyTrustGroup(t.trustGroup, root),
  };
}

export interface ConsultRequest {
  readonly patient: string;
  readonly study?: string;
  readonly purpose: string;
  readonly emergencyJustification?: string;
  readonly roleAssignments?: readonly string[];
  readonly delegations?: readonly (readonly string[])[];
}

export interface ConsultAnswer {
  readonly ticket: Ticket;
  /** The trace (hex) this ticket asks the cloud to insert: the viewer checks it is there. */
  readonly trace: string;
  readonly study: { uid: string; description: string; date: string; modality: string };
  readonly series: {
    uid: string;
    number: number;
    description: string;
    modality: string;
    instances: { id: string; number: number; position: number | null }[];
  }[];
  readonly decision: { rules: string[]; obligations: string[] };
}

export interface Retrieved {
  readonly id: string;
  readonly bytes: Uint8Array;
}

export class FederationClient {
  private producer?: SessionClient;
  private cloud?: SessionClient;

  constructor(
    readonly endpoints: Endpoints,
    private readonly device: DeviceKeys,
    private readonly trust: () => PkiView,
    private readonly f: typeof fetch = fetch,
  ) {}

  /** The device thumbprint: what tickets are bound to. */
  async deviceId(): Promise<string> {
    const cert = new X509Certificate(this.device.chain[0]!);
    return toHex(new Uint8Array(await cert.getThumbprint('SHA-256')));
  }

  static async login(
    consumer: string,
    user: string,
    password: string,
    f: typeof fetch = fetch,
  ): Promise<{
    token: string;
    clinician: { id: string; name: string; role: string; hospital: string };
  }> {
    return (await json(
      await f(`${consumer}/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ user, password }),
      }),
    )) as never;
  }

  async roleAssignments(token: string): Promise<string[]> {
    const r = (await json(
      await this.f(`${this.endpoints.consumer}/role-assignments`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}` },
      }),
    )) as { statements: string[] };
    return r.statements;
  }

  private async session(url: string, role: 'producer' | 'cloud'): Promise<SessionClient> {
    const c = new SessionClient(poster(url, this.f), {
      credentials: {
        signer: await signingKeyFromCryptoKeys(
          'ECDSA-P256',
          this.device.signing.privateKey,
          this.device.signing.publicKey,
        ),
        chain: this.device.chain,
      },
      validateServer: organisationValidator(this.trust, [role]),
    });
    await c.connect();
    return c;
  }

  private async producerSession(): Promise<SessionClient> {
    return (this.producer ??= await this.session(this.endpoints.producer, 'producer'));
  }

  private async cloudSession(): Promise<SessionClient> {
    return (this.cloud ??= await this.session(this.endpoints.cloud, 'cloud'));
  }

  async search(
    purpose: string,
    roleAssignments: readonly string[] = [],
  ): Promise<{
    studies: {
      patient: { id: string; name: string; birthDate: string };
      study: ConsultAnswer['study'];
      series: { uid: string; description: string; instances: number }[];
    }[];
  }> {
    return (await this.producerSession()).request('search', { purpose, roleAssignments });
  }

  async consult(req: ConsultRequest): Promise<ConsultAnswer> {
    return (await this.producerSession()).request('consult', req);
  }

  /** Opens the ticket's key part with this device's (non-extractable) encryption key. */
  async openKeys(
    ticket: Ticket,
    resolveProducer: Parameters<typeof openKeysPart>[1]['resolveProducer'],
  ): Promise<Map<string, Uint8Array>> {
    const { keys } = await openKeysPart(ticket.keys, {
      resolveProducer,
      decryptionKey: this.device.encryption.privateKey,
      deviceId: await this.deviceId(),
    });
    return keys;
  }

  async redeem(
    ticket: Ticket,
  ): Promise<{ redemption: string; ticket: string; images: string[]; expiresAt: number }> {
    return (await this.cloudSession()).request('redeem', { ticket: ticket.cloud });
  }

  /** Streams the traced instances of a redemption, one complete instance at a time. */
  async *retrieve(redemption: string): AsyncGenerator<Retrieved> {
    const s = await this.cloudSession();
    const fetchStream = async (path: string, sealed: Sealed) => {
      const r = await this.f(`${this.endpoints.cloud}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(sealed),
      });
      if (!r.ok || !r.body)
        throw new HttpFailure(r.status, 'stream', `the cloud answered ${r.status}`);
      const reader = r.body.getReader();
      return (async function* () {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) return;
          yield value;
        }
      })();
    };
    const frames = s.stream('retrieve', { redemption }, fetchStream);
    for await (const part of parseMultipart(frames)) {
      const id =
        /\/instances\/([0-9a-f-]+)/.exec(part.headers['content-location'] ?? '')?.[1] ?? '';
      yield { id, bytes: part.body };
    }
    // The multipart body is complete; the stream's final frame must still be read and checked.
    for (let r = await frames.next(); !r.done; r = await frames.next())
      if (r.value.length)
        throw new ZtvError('integrity', 'the cloud sent data after the end of the retrieval');
  }

  async close(): Promise<void> {
    await this.producer?.close();
    await this.cloud?.close();
    this.producer = undefined;
    this.cloud = undefined;
  }
}
