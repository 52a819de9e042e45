import {
  UpdatePolicyEntry,
  effectiveUpdatePolicy,
  insideAnyWindow,
  isWindowWait,
  nextOpening,
  projectDoneBy,
  updatePolicyProblem,
} from './update-policy';
import { UpdatePolicyInputSchema } from './update-policy-input';
import { MAINTENANCE_WAIT } from './maintenance-window';

const at = (text: string): number => Date.parse(text);
const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

function entry(scope: UpdatePolicyEntry['scope'], settings: Partial<UpdatePolicyEntry>): UpdatePolicyEntry {
  return {
    scope,
    maintenanceWindows: null,
    downloadWindows: null,
    downloadRate: null,
    updatedAt: '2026-01-01T00:00:00.000Z',
    ...settings,
  };
}

const NIGHT = 'daily 02:00-04:00 Europe/Berlin';
const WEEKEND = 'Sat,Sun 10:00-12:00 Europe/Berlin';
const LUNCH = 'Mon-Fri 12:00-13:00 UTC';

describe('update policies: which level wins', () => {
  const entries = [
    entry({ kind: 'fleet' }, { maintenanceWindows: [NIGHT], downloadRate: 500_000 }),
    entry(
      { kind: 'tag', tag: 'site', value: 'north' },
      { maintenanceWindows: [WEEKEND], downloadRate: 200_000 },
    ),
    entry({ kind: 'tag', tag: 'link', value: 'lte' }, { maintenanceWindows: [LUNCH], downloadRate: 50_000 }),
    entry({ kind: 'device', uuid: 'd1' }, { downloadRate: 0, downloadWindows: [] }),
  ];

  it('falls back to the fleet for a device no tag or own entry concerns', () => {
    expect(effectiveUpdatePolicy(entries, { uuid: 'x', tags: { site: 'south' } })).toEqual({
      maintenanceWindows: [NIGHT],
      downloadWindows: [],
      downloadRate: 500_000,
      sources: { maintenanceWindows: 'fleet', downloadWindows: null, downloadRate: 'fleet' },
    });
  });

  it('takes a matching tag over the fleet; several tags add their windows and the lowest cap holds', () => {
    expect(effectiveUpdatePolicy(entries, { uuid: 'x', tags: { site: 'north' } })).toMatchObject({
      maintenanceWindows: [WEEKEND],
      downloadRate: 200_000,
      sources: { maintenanceWindows: 'tag site=north', downloadRate: 'tag site=north' },
    });
    const both = effectiveUpdatePolicy(entries, { uuid: 'x', tags: { site: 'north', link: 'lte' } });
    expect(both.maintenanceWindows.sort()).toEqual([LUNCH, WEEKEND].sort());
    expect(both).toMatchObject({ downloadRate: 50_000, sources: { downloadRate: 'tag link=lte' } });
  });

  it("takes the device's own setting over everything, and an explicit 0 or [] lifts a broader limit", () => {
    expect(effectiveUpdatePolicy(entries, { uuid: 'd1', tags: { link: 'lte' } })).toEqual({
      // Its own entry sets no maintenance windows: the tag's apply.
      maintenanceWindows: [LUNCH],
      downloadWindows: [],
      downloadRate: 0,
      sources: { maintenanceWindows: 'tag link=lte', downloadWindows: 'device', downloadRate: 'device' },
    });
  });

  it('means "any time, no cap" without entries', () => {
    expect(effectiveUpdatePolicy([], { uuid: 'x', tags: {} })).toEqual({
      maintenanceWindows: [],
      downloadWindows: [],
      downloadRate: 0,
      sources: { maintenanceWindows: null, downloadWindows: null, downloadRate: null },
    });
  });
});

describe('update policies: windows and projections', () => {
  it('is inside when any window is open, and always without windows', () => {
    // Sat 2026-01-17 10:30 Berlin (CET) = 09:30 UTC.
    expect(insideAnyWindow([NIGHT, WEEKEND], at('2026-01-17T09:30:00Z'))).toBe(true);
    expect(insideAnyWindow([NIGHT], at('2026-01-17T09:30:00Z'))).toBe(false);
    expect(insideAnyWindow([], at('2026-01-17T09:30:00Z'))).toBe(true);
  });

  it('opens at the earliest of several windows', () => {
    // Fri 2026-01-16 14:00 UTC: next night 02:00 CET Sat = 01:00 UTC Sat; next lunch Mon 12:00 UTC.
    expect(iso(nextOpening([LUNCH, NIGHT], at('2026-01-16T14:00:00Z')))).toBe('2026-01-17T01:00:00.000Z');
    expect(nextOpening([], at('2026-01-16T14:00:00Z'))).toBe(at('2026-01-16T14:00:00Z'));
  });

  it('projects nothing when the policy limits nothing', () => {
    expect(
      projectDoneBy({ maintenanceWindows: [], downloadWindows: [], downloadRate: 0 }, 1e9, 0),
    ).toBeNull();
  });

  it('projects a capped download, then the wait for the maintenance window', () => {
    const now = at('2026-01-14T10:00:00Z'); // Wednesday
    // 36 MB at 10 kB/s = 3600 s: done downloading at 11:00 UTC; installs at 02:00 Berlin = 01:00 UTC.
    const policy = { maintenanceWindows: [NIGHT], downloadWindows: [], downloadRate: 10_000 };
    expect(iso(projectDoneBy(policy, 36_000_000, now))).toBe('2026-01-15T01:00:00.000Z');
    expect(iso(projectDoneBy({ ...policy, maintenanceWindows: [] }, 36_000_000, now))).toBe(
      '2026-01-14T11:00:00.000Z',
    );
  });

  it('pauses a capped download while its download windows are shut and resumes it when one opens', () => {
    const now = at('2026-01-14T10:00:00Z'); // Wednesday, before the window
    // Download only 12:00-13:00 UTC on weekdays: 1.5 h of transfer takes Wed 12:00-13:00 and Thu 12:00-12:30.
    const policy = { maintenanceWindows: [], downloadWindows: [LUNCH], downloadRate: 1000 };
    expect(iso(projectDoneBy(policy, 5_400_000, now))).toBe('2026-01-15T12:30:00.000Z');
  });

  it('follows a time zone across a daylight saving change', () => {
    // Europe/Berlin springs forward on Sun 2026-03-29: 02:00 local is 01:00 UTC before, 00:00 UTC after.
    const policy = { maintenanceWindows: [NIGHT], downloadWindows: [], downloadRate: 0 };
    expect(iso(projectDoneBy(policy, 0, at('2026-03-27T12:00:00Z')))).toBe('2026-03-28T01:00:00.000Z');
    expect(iso(projectDoneBy(policy, 0, at('2026-03-30T12:00:00Z')))).toBe('2026-03-31T00:00:00.000Z');
  });

  it('tells window waits from other deferrals', () => {
    expect(isWindowWait(`${MAINTENANCE_WAIT} (opens 2026-01-15T01:00:00.000Z)`)).toBe(true);
    expect(isWindowWait('waiting for download window (opens …)')).toBe(true);
    expect(isWindowWait('update lock held (/tmp/ferry/updates.lock)')).toBe(false);
    expect(isWindowWait(null)).toBe(false);
  });
});

describe('update policies: hostile input', () => {
  it.each([
    [null, /not an object/],
    [[], /not an object/],
    [
      { maintenanceWindows: 'daily 02:00-04:00 UTC', downloadWindows: [], downloadRate: 0 },
      /maintenanceWindows/,
    ],
    [{ maintenanceWindows: [], downloadWindows: [7], downloadRate: 0 }, /not a window/],
    [{ maintenanceWindows: ['daily 25:00-26:00 UTC'], downloadWindows: [], downloadRate: 0 }, /not a time/],
    [{ maintenanceWindows: Array(17).fill(NIGHT), downloadWindows: [], downloadRate: 0 }, /at most 16/],
    [{ maintenanceWindows: [], downloadWindows: [], downloadRate: -1 }, /downloadRate/],
    [{ maintenanceWindows: [], downloadWindows: [], downloadRate: 1e300 }, /downloadRate/],
    [{ maintenanceWindows: [], downloadWindows: [], downloadRate: '100' }, /downloadRate/],
    [
      { maintenanceWindows: ['daily 02:00-04:00 Mars/Olympus'], downloadWindows: [], downloadRate: 0 },
      /time zone/,
    ],
  ])('refuses the target policy %j', (value, problem) => {
    expect(updatePolicyProblem(value)).toMatch(problem);
  });

  it('accepts a well-formed target policy', () => {
    expect(
      updatePolicyProblem({ maintenanceWindows: [NIGHT], downloadWindows: [], downloadRate: 1 }),
    ).toBeNull();
  });

  it.each([
    [{ tag: 'site=north', device: '0'.repeat(32) }, /not both/],
    [{ tag: 'no-equals-sign' }, /name=value/],
    [{ maintenanceWindows: ['every night'] }, /DAYS HH:MM-HH:MM ZONE/],
    [{ downloadRate: 1.5 }, /integer|int/i],
    [{ downloadRate: 1e11 }, /10000000000|too big|less than/i],
    [{ windows: [] }, /unrecognized|Unrecognized/],
  ])('refuses the API input %j', (body, message) => {
    const result = UpdatePolicyInputSchema.safeParse(body);
    expect(result.success).toBe(false);
    expect(JSON.stringify(result.error?.issues)).toMatch(message);
  });
});
