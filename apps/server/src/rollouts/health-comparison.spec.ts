import { HealthComparisonSchema } from '@ferry/protocol';
import { GroupHealth, groupHealth, judgeHealth } from './health-comparison';

const options = HealthComparisonSchema.parse({});
const window = (updated: GroupHealth, control: GroupHealth) => ({
  from: '2026-01-01T00:00:00.000Z',
  to: '2026-01-01T00:10:00.000Z',
  updated,
  control,
});
const group = (devices: number, affected: GroupHealth['affected'] = {}): GroupHealth => ({
  devices,
  affected,
  events: { ...affected },
});

describe('judgeHealth', () => {
  it('finds a crash-looping batch worse: 5 of 5 restarted against 2 of 40', () => {
    const verdict = judgeHealth(
      window(group(5, { restarts: 5 }), group(40, { restarts: 2 })),
      options,
      false,
    );
    expect(verdict.verdict).toBe('worse');
    const restarts = verdict.kinds.find((k) => k.kind === 'restarts');
    expect(restarts).toMatchObject({ worse: true, differencePercent: 95, threshold: 0.05 / 4 });
    expect(restarts?.pValue).toBeCloseTo(21 / 1_221_759, 12);
    expect(verdict.kinds.filter((k) => k.worse)).toHaveLength(1);
    expect(verdict.summary).toContain('restarts: 5 of 5 updated devices vs 2 of 40 on the old release');
  });

  it('does not fail a batch of one device, however clean the control group', () => {
    // p = 1/201 would pass Holm's first step, but one device alone is never enough (minAffected 2).
    const verdict = judgeHealth(window(group(1, { restarts: 1 }), group(200)), options, false);
    expect(verdict.verdict).toBe('ok');
    expect(verdict.kinds[0]?.pValue).toBeCloseTo(1 / 201, 12);
    expect(verdict.kinds[0]?.worse).toBe(false);
  });

  it('does not fail a tiny batch on noise: 2 of 3 against 1 of 20 is not significant over four kinds', () => {
    // p = 0.0344: under 0.05 alone, not under Holm's 0.0125.
    const verdict = judgeHealth(window(group(3, { offline: 2 }), group(20, { offline: 1 })), options, false);
    const offline = verdict.kinds.find((k) => k.kind === 'offline');
    expect(offline?.pValue).toBeGreaterThan(0.0125);
    expect(offline?.pValue).toBeLessThan(0.05);
    expect(verdict.verdict).toBe('ok');
  });

  it('does not fail a difference below the margin, however significant', () => {
    // 16 % against 5 % of large groups: p is tiny, but 11 points do not exceed a 12-point margin.
    const strict = { ...options, marginPercent: 12 };
    const verdict = judgeHealth(
      window(group(1000, { errors: 160 }), group(1000, { errors: 50 })),
      strict,
      false,
    );
    const errors = verdict.kinds.find((k) => k.kind === 'errors');
    expect(errors?.pValue).toBeLessThan(1e-10);
    expect(errors?.worse).toBe(false);
    expect(verdict.verdict).toBe('ok');
    expect(
      judgeHealth(window(group(1000, { errors: 160 }), group(1000, { errors: 50 })), options, false).verdict,
    ).toBe('worse');
  });

  it('never finds a group worse for being better', () => {
    const verdict = judgeHealth(window(group(10), group(30, { restarts: 30, offline: 30 })), options, false);
    expect(verdict.verdict).toBe('ok');
    expect(verdict.kinds.every((k) => k.pValue === 1)).toBe(true);
  });

  it('compares configured app metrics too, with the correction over five kinds', () => {
    const withMetric = { ...options, metrics: ['brownouts'] };
    const verdict = judgeHealth(
      window(group(8, { 'metric:brownouts': 7 }), group(30, { 'metric:brownouts': 1 })),
      withMetric,
      false,
    );
    expect(verdict.kinds.map((k) => k.kind)).toEqual([
      'restarts',
      'healthChecks',
      'offline',
      'errors',
      'metric:brownouts',
    ]);
    expect(verdict.kinds[4]).toMatchObject({ worse: true, threshold: 0.05 / 5 });
    expect(verdict.verdict).toBe('worse');
  });

  it('judges nothing without a control group or an updated group', () => {
    expect(judgeHealth(window(group(5, { restarts: 5 }), group(0)), options, false).verdict).toBe(
      'no-control',
    );
    expect(judgeHealth(window(group(0), group(5)), options, true)).toMatchObject({
      verdict: 'no-updated',
      interim: true,
    });
  });

  it('gives Wilson intervals of each group’s share in percent', () => {
    const verdict = judgeHealth(window(group(10, { restarts: 5 }), group(10)), options, true);
    expect(verdict.kinds[0]?.updated.low).toBeCloseTo(23.66, 2);
    expect(verdict.kinds[0]?.control.high).toBeCloseTo(27.75, 2);
  });
});

describe('groupHealth', () => {
  it('counts devices affected and events per kind; devices without rows count as unaffected', () => {
    const counts = new Map([
      ['a', new Map([['restarts', 3]])],
      [
        'b',
        new Map([
          ['restarts', 1],
          ['offline', 2],
        ]),
      ],
      ['z', new Map([['restarts', 9]])],
    ]);
    expect(groupHealth(['a', 'b', 'c'], counts)).toEqual({
      devices: 3,
      affected: { restarts: 2, offline: 1 },
      events: { restarts: 4, offline: 2 },
    });
  });
});
