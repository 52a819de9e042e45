import { FakeClock, SystemClock } from './clock';

describe('Clock', () => {
  it('the system clock reads the machine time', () => {
    const before = Date.now();
    const now = new SystemClock().nowMs();
    expect(now).toBeGreaterThanOrEqual(before);
    expect(now).toBeLessThanOrEqual(Date.now());
  });

  it('a fake clock stands still until set or advanced', () => {
    const clock = new FakeClock('2026-03-01T10:00:00.000Z');
    expect(clock.iso()).toBe('2026-03-01T10:00:00.000Z');
    expect(clock.iso()).toBe('2026-03-01T10:00:00.000Z');
    clock.advance(1500);
    expect(clock.now()).toEqual(new Date('2026-03-01T10:00:01.500Z'));
    clock.set(0);
    expect(clock.nowMs()).toBe(0);
  });
});
