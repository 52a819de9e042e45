import { Injectable, Inject } from '@nestjs/common';
import { FerryEvent, TargetNotice, deviceTopic } from '@ferry/protocol';
import { FERRY_CONFIG } from '../config/config.module';
import { FerryConfig } from '../config/config';
import { EventBus } from '../events/event-bus.service';
import { MqttRepository } from './mqtt.repository';

/** One device and the notice it gets. */
export interface DeviceNotice {
  uuid: string;
  notice: TargetNotice;
}

/**
 * Tells devices their target release changed: a retained QoS 1 message on each device's `target`
 * topic, so a device that is offline gets it when it reconnects. Used by `PUT /v1/devices/:uuid/target`
 * and, later, the rollout engine. Takes everything a notice needs from the caller: publishing to
 * 10,000 devices makes no database round trip.
 */
@Injectable()
export class DeviceNotifier {
  constructor(
    private readonly mqtt: MqttRepository,
    private readonly bus: EventBus,
    @Inject(FERRY_CONFIG) private readonly config: FerryConfig,
  ) {}

  /** The URL devices fetch layers from, for notices. */
  blobsUrl(): string {
    return `${this.config.http.publicUrl}/v1/blobs`;
  }

  async notifyTarget(uuid: string, notice: TargetNotice): Promise<void> {
    await this.notifyTargets([{ uuid, notice }]);
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
    const at = new Date().toISOString();
    const events: FerryEvent[] = notices.map(({ uuid, notice }) => ({
      type: 'device.target',
      fleetId: notice.fleetId,
      at,
      data: { uuid, releaseId: notice.releaseId, version: notice.version },
    }));
    this.bus.publish(events);
  }
}
