import { RolloutStrategySchema, ValidationError } from '@ferry/protocol';
import { BlobsModule } from '../../apps/server/src/blobs/blobs.module';
import { RolloutSettingsModule } from '../../apps/server/src/rollout-settings/rollout-settings.module';
import { RolloutSettingsService } from '../../apps/server/src/rollout-settings/rollout-settings.service';
import { RolloutTicker } from '../../apps/server/src/rollouts/rollout-ticker.service';
import { RolloutViewsService } from '../../apps/server/src/rollouts/rollout-views.service';
import { Medium, pushRelease, startMedium } from '../support/medium';
import { eventually } from '../support/mqtt-devices';
import { DATABASE_KINDS } from '../support/test-server';
import { fleetOnV1 } from './rollout-fleet';

describe.each(DATABASE_KINDS)('fleet rollout settings on %s', (kind) => {
  let m: Medium;
  let settings: RolloutSettingsService;

  beforeAll(async () => {
    m = await startMedium(kind, [BlobsModule, RolloutSettingsModule], { replace: [[RolloutTicker, {}]] });
    settings = m.get(RolloutSettingsService);
  });
  afterAll(() => m.close());

  it('answers the defaults until changed, keeps what a change leaves out, and refuses shrinking batches', async () => {
    const f = await fleetOnV1(m, 1);
    expect(await settings.settings(f.slug)).toEqual({
      fleetId: f.fleetId,
      trackLatest: false,
      defaultStrategy: RolloutStrategySchema.parse({}),
    });
    const strategy = RolloutStrategySchema.parse({ batches: [1, '100%'], bakeSeconds: 5 });
    await settings.update(f.slug, { defaultStrategy: strategy });
    expect(await settings.update(f.slug, { trackLatest: true })).toEqual({
      fleetId: f.fleetId,
      trackLatest: true,
      defaultStrategy: strategy,
    });
    await expect(
      settings.update(f.slug, { defaultStrategy: RolloutStrategySchema.parse({ batches: [5, 2] }) }),
    ).rejects.toThrow(ValidationError);
    expect((await settings.settings(f.slug)).defaultStrategy).toEqual(strategy);
  });

  it('starts a rollout of every pushed release with the default strategy when the fleet tracks the latest', async () => {
    const f = await fleetOnV1(m, 2);
    const views = m.get(RolloutViewsService);
    await pushRelease(m, f.slug, 3, { 'app/version': `v3 ${f.fleetId}\n` });
    expect(await views.list(f.slug, undefined, 10)).toEqual([]);
    await settings.update(f.slug, {
      trackLatest: true,
      defaultStrategy: RolloutStrategySchema.parse({ batches: ['100%'], bakeSeconds: 0 }),
    });
    const v4 = await pushRelease(m, f.slug, 4, { 'app/version': `v4 ${f.fleetId}\n` });
    // Started in the background by the push's event.
    const started = await eventually(async () => {
      const list = await views.list(f.slug, undefined, 10);
      return list.length > 0 ? list : undefined;
    });
    expect(started.map((r) => [r.releaseId, r.trigger, r.state, r.total])).toEqual([
      [v4.id, 'track-latest', 'running', 2],
    ]);
  });
});
