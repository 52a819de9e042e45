/**
 * The server's time. Services read it here instead of `Date.now()` / `new Date()`, so a test can
 * fix it or move it on ({@link FakeClock}) and assert exact timestamps and deadlines.
 */
export abstract class Clock {
  abstract nowMs(): number;

  now(): Date {
    return new Date(this.nowMs());
  }

  /** Now as an ISO-8601 UTC timestamp, the form every stored time has. */
  iso(): string {
    return this.now().toISOString();
  }
}

/** The machine's clock. */
export class SystemClock extends Clock {
  nowMs(): number {
    return Date.now();
  }
}

/** A clock that stands still until a test sets or advances it. */
export class FakeClock extends Clock {
  private ms: number;

  constructor(start: Date | number | string = '2026-01-01T00:00:00.000Z') {
    super();
    this.ms = typeof start === 'number' ? start : new Date(start).getTime();
  }

  nowMs(): number {
    return this.ms;
  }

  set(at: Date | number | string): void {
    this.ms = typeof at === 'number' ? at : new Date(at).getTime();
  }

  advance(ms: number): void {
    this.ms += ms;
  }
}
