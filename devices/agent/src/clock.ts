/** A pending timer of a {@link Clock}. */
export interface ClockTimer {
  cancel(): void;
}

/**
 * Time and timers as the agent's parts see them: the machine's by default ({@link systemClock}), a
 * fake one in tests so that "one report a second" is checked without waiting a second.
 */
export interface Clock {
  nowMs(): number;
  /** Calls `fn` once after `ms` unless canceled first. */
  after(ms: number, fn: () => void): ClockTimer;
}

export const systemClock: Clock = {
  nowMs: () => Date.now(),
  after: (ms, fn) => {
    const timer = setTimeout(fn, ms);
    return { cancel: () => clearTimeout(timer) };
  },
};
