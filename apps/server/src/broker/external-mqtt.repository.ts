import { randomBytes } from 'node:crypto';
import { Logger } from '@nestjs/common';
import { MqttClient, connectAsync } from 'mqtt';
import { TOPIC_ROOT } from '@ferry/protocol';
import { FerryConfig } from '../config/config';
import { BrokerPolicy, MqttRepository, OutgoingMessage } from './mqtt.repository';

/**
 * An existing broker (`MQTT_URL`, e.g. Mosquitto) that the server only uses as a client: it publishes
 * notices and subscribes to every device's state and presence. That broker authenticates devices and
 * enforces the topic ACL (README: "Using an external MQTT broker").
 */
export class ExternalMqttRepository extends MqttRepository {
  private readonly logger = new Logger('MqttClient');
  private client: MqttClient | null = null;

  constructor(private readonly config: FerryConfig) {
    super();
  }

  async start(policy: BrokerPolicy): Promise<void> {
    const url = this.config.mqtt.externalUrl;
    if (!url) throw new Error('MQTT_URL is not set');
    const credentials = this.config.mqtt.serverCredentials;
    try {
      this.client = await connectAsync(url, {
        protocolVersion: 4,
        clientId: `ferry-server-${randomBytes(6).toString('hex')}`,
        clean: true,
        username: credentials?.username,
        password: credentials?.password,
        reconnectPeriod: 1000,
        connectTimeout: 5000,
      });
    } catch (error) {
      throw new Error(
        `MQTT broker at ${url} (MQTT_URL) refused or is unreachable: ${(error as Error).message}`,
      );
    }
    const client = this.client;
    client.on('error', (error) => this.logger.warn(`MQTT: ${error.message}`));
    client.on('message', (topic, payload) => policy.received(topic, payload));
    // State at QoS 0 on the broker → server leg: a broker holds at most a few unacknowledged QoS 1
    // messages per subscriber in flight (Mosquitto: max_inflight_messages 20) and drops what queues
    // beyond max_queued_messages (1000), so 10,000 devices reporting at once lost most reports at QoS 1
    // (BENCHMARKS.md). Devices still publish at QoS 1 to the broker; presence stays QoS 1 (retained).
    // Several server replicas on one broker split the device messages with a shared subscription
    // (MQTT 5, which Mosquitto and EMQX also grant MQTT 3.1.1 clients); without one, each replica
    // would take in every report.
    const group = this.config.mqtt.sharedGroup;
    const share = group ? `$share/${group}/` : '';
    const filters = {
      [`${share}${TOPIC_ROOT}/+/state`]: { qos: 0 as const },
      [`${share}${TOPIC_ROOT}/+/presence`]: { qos: 1 as const },
    };
    const subscribe = async (): Promise<void> => {
      const granted = await client.subscribeAsync(filters);
      const refused = granted.filter((g) => g.qos === 128).map((g) => g.topic);
      if (refused.length > 0)
        throw new Error(`MQTT broker at ${url} refused the server's subscriptions: ${refused.join(', ')}`);
    };
    await subscribe();
    // After a reconnect, a clean session has lost its subscriptions.
    client.on('connect', (connack) => {
      if (!connack.sessionPresent)
        subscribe().catch((error: Error) => this.logger.warn(`MQTT: ${error.message}`));
    });
  }

  async publish(messages: OutgoingMessage[]): Promise<void> {
    const client = this.client;
    if (!client) throw new Error('not connected to the MQTT broker');
    await Promise.all(
      messages.map((m) => client.publishAsync(m.topic, m.payload, { qos: m.qos, retain: m.retain })),
    );
  }

  async evict(_uuid: string): Promise<void> {
    // The external broker owns connections; its auth backend must stop accepting the device's key.
  }

  port(): number | null {
    return null;
  }

  connectedClients(): number | null {
    return null;
  }

  async close(): Promise<void> {
    await this.client?.endAsync().catch(() => this.client?.end(true));
  }
}
