import { Injectable } from '@nestjs/common';
import { VariablesNotice, deviceTopic } from '@ferry/protocol';
import { MqttRepository } from '../broker/mqtt.repository';
import { Clock } from '../clock/clock';

/**
 * Tells devices their variables changed: a retained QoS 1 {@link VariablesNotice} on each device's
 * `variables` topic, so one that is offline learns it when it reconnects. The notice carries only the
 * version; the device fetches the values over HTTPS (secrets never sit in the broker's retained store).
 */
@Injectable()
export class VariablesNotifier {
  constructor(
    private readonly mqtt: MqttRepository,
    private readonly clock: Clock,
  ) {}

  /** Resolves when the broker has taken every notice. */
  async notify(devices: { uuid: string; version: number }[]): Promise<void> {
    const issuedAt = this.clock.iso();
    await this.mqtt.publish(
      devices.map(({ uuid, version }) => {
        const notice: VariablesNotice = { version, issuedAt };
        return {
          topic: deviceTopic(uuid, 'variables'),
          payload: JSON.stringify(notice),
          qos: 1,
          retain: true,
        };
      }),
    );
  }
}
