// Bounds the warn lines that connections from the network can cause. A scan, a
// flood of bad handshakes or a balancer sending garbage would otherwise write
// one line per connection (and journald's back-pressure would then stall the
// JavaScript thread). Per close reason, the first `threshold` lines of each
// interval are written as they come; the rest are counted, and one summary line
// per reason says how many were left out once the interval is over.

export interface ThrottleOptions {
  /** Lines per reason and interval written one by one. */
  threshold: number;
  intervalMs: number;
  /** Called once per reason and interval that had lines left out. */
  summary(reason: string, suppressed: number, intervalMs: number): void;
  now?: () => number;
}

export const DEFAULT_THROTTLE = { threshold: 20, intervalMs: 10_000 } as const;

export class LogThrottle {
  #counts = new Map<string, number>();
  #windowStart: number;
  #timer?: NodeJS.Timeout;
  readonly #o: ThrottleOptions;
  readonly #now: () => number;

  constructor(o: ThrottleOptions) {
    this.#o = o;
    this.#now = o.now ?? Date.now;
    this.#windowStart = this.#now();
  }

  /** True: write this line. False: it is counted for the interval's summary. */
  admit(reason: string): boolean {
    if (this.#now() - this.#windowStart >= this.#o.intervalMs) this.flush();
    const n = (this.#counts.get(reason) ?? 0) + 1;
    this.#counts.set(reason, n);
    if (n <= this.#o.threshold) return true;
    // The summary must not wait for the next failure, which may never come.
    this.#timer ??= setTimeout(() => this.flush(), this.#windowStart + this.#o.intervalMs - this.#now()).unref();
    return false;
  }

  /** Writes the summaries of the interval so far and starts a new one (also on stop). */
  flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const [reason, n] of this.#counts) if (n > this.#o.threshold) this.#o.summary(reason, n - this.#o.threshold, this.#o.intervalMs);
    this.#counts.clear();
    this.#windowStart = this.#now();
  }
}
