import { Injectable } from '@nestjs/common';
import { HealthComparison, HealthVerdict } from '@ferry/protocol';
import { HealthWindow, bakeWindow, groupHealth, healthGroups, judgeHealth } from './health-comparison';
import { EngineBatch } from './rollout-engine';
import { RolloutHealthRepository } from './rollout-health.repository';

/**
 * Builds a baking batch's control-group comparison from stored health events: what the engine judges
 * when the bake ends, and what the rollout view shows while it bakes.
 */
@Injectable()
export class RolloutHealthService {
  constructor(private readonly events: RolloutHealthRepository) {}

  /** Both groups of batch `batch` over its bake window up to `now`, or null before it bakes. */
  async window(
    batch: EngineBatch,
    bakeSeconds: number,
    devices: readonly { uuid: string; batch: number; state: string }[],
    now: number,
  ): Promise<HealthWindow | null> {
    const span = bakeWindow(batch, bakeSeconds, now);
    if (!span) return null;
    const groups = healthGroups(devices, batch.number);
    const counts = await this.events.countsByDevice(
      [...groups.updated, ...groups.control],
      span.from,
      span.to,
    );
    return {
      ...span,
      updated: groupHealth(groups.updated, counts),
      control: groupHealth(groups.control, counts),
    };
  }

  /** The interim verdict of a batch still baking (shown, never acted on). */
  async interim(
    batch: EngineBatch,
    options: HealthComparison,
    bakeSeconds: number,
    devices: readonly { uuid: string; batch: number; state: string }[],
    now: number,
  ): Promise<HealthVerdict | null> {
    const window = await this.window(batch, bakeSeconds, devices, now);
    return window ? judgeHealth(window, options, true) : null;
  }
}
