/**
 * Sign-in throttling, per account and per address: each keeps its recent failed sign-ins; past a few
 * free failures each further attempt waits a delay that doubles with every failure (refused at once
 * with 429 and Retry-After until it has passed, so nothing is held open), and past a threshold the key
 * is locked for a while, whatever the password. A success clears the account's count and the
 * address's; failures are forgotten after a quiet window. Kept in memory, bounded in size: a restart
 * forgets them (docs/security.md, "Sign-in").
 */

export interface ThrottleRule {
  /** Failures answered without delay. */
  readonly free: number;
  /** The delay after the first failure beyond `free`, doubled with each further one (ms). */
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
  /** Failures after which the key is locked for `lockMs`. */
  readonly lockAfter: number;
  readonly lockMs: number;
  /** Failures are forgotten after this long without one (ms). */
  readonly windowMs: number;
}

/** 3 free failures, then 1 s, 2 s, 4 s … (≤ 60 s); locked 15 min after 10. */
export const ACCOUNT_RULE: ThrottleRule = {
  free: 3,
  baseDelayMs: 1000,
  maxDelayMs: 60_000,
  lockAfter: 10,
  lockMs: 15 * 60_000,
  windowMs: 15 * 60_000,
};

/** An address tries many accounts: 10 free failures, then growing delays; locked after 50. */
export const ADDRESS_RULE: ThrottleRule = {
  free: 10,
  baseDelayMs: 1000,
  maxDelayMs: 60_000,
  lockAfter: 50,
  lockMs: 15 * 60_000,
  windowMs: 15 * 60_000,
};

interface State {
  failures: number;
  last: number;
}

/** Why an attempt is not heard now, and for how long. */
export interface Refusal {
  readonly locked: boolean;
  readonly retryAfterMs: number;
  readonly failures: number;
}

/** One kind of key (accounts, or addresses) and its rule. */
export class Throttle {
  private readonly states = new Map<string, State>();

  constructor(
    private readonly rule: ThrottleRule,
    private readonly maxKeys = 100_000,
  ) {}

  /** Whether an attempt for `key` must wait (and how long), or may be heard now. */
  check(key: string, now: number): Refusal | undefined {
    const s = this.current(key, now);
    if (!s || s.failures < this.rule.free) return undefined;
    const locked = s.failures >= this.rule.lockAfter;
    const wait = locked
      ? this.rule.lockMs
      : Math.min(this.rule.baseDelayMs * 2 ** (s.failures - this.rule.free), this.rule.maxDelayMs);
    const until = s.last + wait;
    return until > now ? { locked, retryAfterMs: until - now, failures: s.failures } : undefined;
  }

  failed(key: string, now: number): number {
    const s = this.current(key, now) ?? { failures: 0, last: now };
    // A lock that has run out starts the count again.
    if (s.failures >= this.rule.lockAfter) s.failures = 0;
    s.failures++;
    s.last = now;
    this.states.delete(key);
    this.states.set(key, s);
    if (this.states.size > this.maxKeys) this.states.delete(this.states.keys().next().value!);
    return s.failures;
  }

  succeeded(key: string): void {
    this.states.delete(key);
  }

  private current(key: string, now: number): State | undefined {
    const s = this.states.get(key);
    if (!s) return undefined;
    const quiet = s.failures >= this.rule.lockAfter ? this.rule.lockMs : this.rule.windowMs;
    if (now - s.last > quiet) {
      this.states.delete(key);
      return undefined;
    }
    return s;
  }
}
