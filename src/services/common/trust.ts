/**
 * A service's live view of the federation's trust: the pinned root and certificates from its PKI
 * directory, plus the current trust group and CRLs fetched from the authority (and hospitals' device
 * CRLs from the hospitals) over mutual TLS. Refreshed in the background every few seconds, so that
 * no request waits for the authority; a request waits only when the view is older than twice that
 * (the authority was unreachable), and then fails closed if it still cannot be refreshed. A trust
 * group older than one already seen is refused.
 */
import type { FlattenedJWS } from 'jose';
import { verifyTrustGroup } from '../../core/pki/trust-group.ts';
import { X509Crl } from '../../core/pki/x509.ts';
import type { LoadedPki } from './pki-dir.ts';
import { mtlsFetch, type TlsIdentity } from './tls.ts';

export interface TrustSources {
  /** The authority's base URL (mTLS): /trust-group and /crl.pem. */
  readonly authority?: string;
  /** Hospitals' device-CRL URLs (plain HTTP or mTLS), by hospital CA subject. */
  readonly deviceCrls?: readonly string[];
}

export class LiveTrust {
  private current: LoadedPki;
  private lastRefresh = 0;
  private refreshing: Promise<void> | undefined;
  private timer: ReturnType<typeof setInterval> | undefined;

  constructor(
    initial: LoadedPki,
    private readonly identity: Omit<TlsIdentity, 'pki'> | undefined,
    private readonly sources: TrustSources,
    private readonly minIntervalMs = 5_000,
  ) {
    this.current = initial;
  }

  /** The view as of the last refresh. */
  view(): LoadedPki {
    return this.current;
  }

  /**
   * The view for a decision: the current one while it is younger than twice the refresh interval
   * (a background refresh keeps it so), otherwise refreshed first. `force` always refreshes.
   */
  async fresh(force = false): Promise<LoadedPki> {
    const age = Date.now() - this.lastRefresh;
    if (!force && age < 2 * this.minIntervalMs) {
      if (age >= this.minIntervalMs) void this.refresh().catch(() => undefined);
      return this.current;
    }
    await this.refresh();
    return this.current;
  }

  /** Refreshes every interval in the background, for the life of the process (the timer never keeps it alive). */
  startRefreshing(): this {
    this.timer ??= setInterval(
      () => void this.refresh().catch(() => undefined),
      this.minIntervalMs,
    );
    this.timer.unref?.();
    return this;
  }

  private refresh(): Promise<void> {
    this.refreshing ??= this.load().finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  private async load(): Promise<void> {
    const id = this.identity ? { ...this.identity, pki: this.current } : undefined;
    let trustGroupJws = this.current.trustGroupJws;
    let trustGroup = this.current.trustGroup;
    const crls: X509Crl[] = [];
    if (this.sources.authority && id) {
      // An answer other than 200 is a failed refresh, as an unreachable authority is: the view then
      // ages, and a decision waits for a refresh that succeeds or fails closed (see `fresh`).
      const tg = await mtlsFetch(`${this.sources.authority}/trust-group`, id);
      if (tg.status !== 200)
        throw new Error(`the authority answered ${tg.status} for its trust group`);
      const jws = JSON.parse(tg.body.toString()) as FlattenedJWS;
      trustGroup = await verifyTrustGroup(jws, this.current.root, this.current.trustGroup.version);
      trustGroupJws = jws;
      const crl = await mtlsFetch(`${this.sources.authority}/crl.pem`, id);
      if (crl.status !== 200) throw new Error(`the authority answered ${crl.status} for its CRL`);
      crls.push(new X509Crl(crl.body.toString()));
    }
    for (const url of this.sources.deviceCrls ?? []) {
      const r = await fetch(url).catch(() => undefined);
      if (r?.ok) crls.push(new X509Crl(await r.text()));
    }
    // Keep the newest CRL of each issuer: fetched ones replace those from the directory.
    const byIssuer = new Map<string, X509Crl>();
    for (const c of [...this.current.crls, ...crls]) {
      const prev = byIssuer.get(c.issuer);
      if (!prev || c.thisUpdate >= prev.thisUpdate) byIssuer.set(c.issuer, c);
    }
    this.current = { ...this.current, trustGroup, trustGroupJws, crls: [...byIssuer.values()] };
    this.lastRefresh = Date.now();
  }
}
