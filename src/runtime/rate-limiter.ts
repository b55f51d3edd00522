/**
 * The two rate limiters behind the work queue's `addRateLimited`, after client-go's
 * `util/workqueue/default_rate_limiters.go`: per-key exponential backoff (a failing object waits
 * longer each time, so one broken Cluster cannot monopolise the workers) and a global token
 * bucket (so a burst of failures across many objects — say the meta-cluster blipped — cannot
 * turn into a retry storm). The queue takes the larger of the two delays.
 */
import type { Clock } from "./clock";

export interface BackoffOptions {
  /** First delay, in ms. Default 1000. */
  readonly baseMs?: number;
  /** Largest delay, in ms. Default 300000 (5 minutes). */
  readonly capMs?: number;
}

/** `base * 2^attempt`, capped; attempt 0 is the first retry. */
export function exponentialDelay(attempt: number, baseMs: number, capMs: number): number {
  // 2^attempt overflows to Infinity long before attempt overflows; Math.min handles both.
  return Math.min(capMs, baseMs * Math.pow(2, Math.max(0, attempt)));
}

/** Per-key failure counts; `when` grows the count, `forget` resets it. */
export class PerKeyBackoff {
  private readonly failures = new Map<string, number>();
  readonly baseMs: number;
  readonly capMs: number;

  constructor(options: BackoffOptions = {}) {
    this.baseMs = options.baseMs ?? 1000;
    this.capMs = options.capMs ?? 300_000;
    if (!(this.baseMs > 0) || !(this.capMs >= this.baseMs)) {
      throw new Error(`backoff: need 0 < baseMs <= capMs, got baseMs=${this.baseMs} capMs=${this.capMs}`);
    }
  }

  when(key: string): number {
    const attempt = this.failures.get(key) ?? 0;
    this.failures.set(key, attempt + 1);
    return exponentialDelay(attempt, this.baseMs, this.capMs);
  }

  retries(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  forget(key: string): void {
    this.failures.delete(key);
  }
}

export interface TokenBucketOptions {
  /** Sustained rate, tokens per second. Default 10. */
  readonly qps?: number;
  /** Bucket size: how many may go at once after a quiet period. Default 100. */
  readonly burst?: number;
}

/**
 * A token bucket with reservations, like golang.org/x/time/rate's `Reserve`: taking a token
 * never fails, it returns how long the caller must wait for it. Tokens may go negative, which is
 * what spaces a burst of reservations out at exactly `qps`.
 */
export class TokenBucket {
  readonly qps: number;
  readonly burst: number;
  private tokens: number;
  private last: number;

  constructor(
    private readonly clock: Clock,
    options: TokenBucketOptions = {},
  ) {
    this.qps = options.qps ?? 10;
    this.burst = options.burst ?? 100;
    if (!(this.qps > 0) || !(this.burst >= 1)) {
      throw new Error(`token bucket: need qps > 0 and burst >= 1, got qps=${this.qps} burst=${this.burst}`);
    }
    this.tokens = this.burst;
    this.last = clock.now();
  }

  /** Takes one token; returns the wait in ms before it is really available (0 when in budget). */
  reserve(): number {
    const now = this.clock.now();
    const elapsed = Math.max(0, now - this.last);
    this.last = now;
    this.tokens = Math.min(this.burst, this.tokens + (elapsed * this.qps) / 1000);
    this.tokens -= 1;
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens * 1000) / this.qps);
  }
}
