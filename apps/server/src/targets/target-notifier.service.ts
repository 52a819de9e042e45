import { Injectable, Inject } from '@nestjs/common';
import { FerryEvent, Release, TargetNotice, deviceTopic } from '@ferry/protocol';
import { Clock } from '../clock/clock';
import { FERRY_CONFIG } from '../config/config.module';
import { FerryConfig } from '../config/config';
import { EventBus } from '../events/event-bus.service';
import { MqttRepository } from '../broker/mqtt.repository';

/** One device and the notice it gets. */
export interface DeviceNotice {
  uuid: string;
  notice: TargetNotice;
}

/**
 * Tells devices their target release changed: a retained QoS 1 message on each device's `target`
 * topic, so a device that is offline gets it when it reconnects (for `PUT /v1/devices/:uuid/target`
 * and rollout steps, through `TargetsService`). Takes everything a notice needs from the
 * caller: publishing to 10,000 devices makes no database round trip.
 */
@Injectable()
export class TargetNotifier {
  constructor(
    private readonly mqtt: MqttRepository,
    private readonly bus: EventBus,
    private readonly clock: Clock,
    @Inject(FERRY_CONFIG) private readonly config: FerryConfig,
  ) {}

  /** The notice that tells a device to run `release`, issued at `issuedAt` (default: now). */
  notice(release: Release, issuedAt = this.clock.iso()): TargetNotice {
    return {
      releaseId: release.id,
      version: release.version,
      fleetId: release.fleetId,
      issuedAt,
      blobsUrl: `${this.config.http.publicUrl}/v1/blobs`,
      manifest: release.manifest as unknown as Record<string, unknown>,
      signature: release.signature,
    };
  }

  /** Notifies many devices at once; resolves when the broker has taken every notice. */
  async notifyTargets(notices: DeviceNotice[]): Promise<void> {
    // Devices of one release share one payload buffer.
    const payloads = new Map<TargetNotice, Buffer>();
    await this.mqtt.publish(
      notices.map(({ uuid, notice }) => {
        let payload = payloads.get(notice);
        if (!payload) {
          payload = Buffer.from(JSON.stringify(notice));
          payloads.set(notice, payload);
        }
        return { topic: deviceTopic(uuid, 'target'), payload, qos: 1, retain: true };
      }),
    );
    const at = this.clock.iso();
    const events: FerryEvent[] = notices.map(({ uuid, notice }) => ({
      type: 'device.target',
      fleetId: notice.fleetId,
      at,
      data: { uuid, releaseId: notice.releaseId, version: notice.version, issuedAt: notice.issuedAt },
    }));
    this.bus.publish(events);
  }
}
