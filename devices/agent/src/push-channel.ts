import { connect, type MqttClient } from 'mqtt';
import { deviceTopic } from '@ferry/protocol/wire';
import type { DeviceStateMessage } from '@ferry/protocol/wire';
import type { Logger } from './log';

const MIN_RECONNECT_MS = 1000;
const MAX_RECONNECT_MS = 60_000;

/**
 * The MQTT side of the agent: a persistent session (client id = UUID, clean = false) subscribed to
 * its retained `target` topic at QoS 1, so a notice published while the device was offline is
 * delivered when it returns; reconnects back off from 1 s to 60 s.
 */
export class PushChannel {
  private client: MqttClient | null = null;
  private reconnectMs = MIN_RECONNECT_MS;

  constructor(
    private readonly url: string,
    private readonly uuid: string,
    private readonly apiKey: string,
    private readonly onNotice: (payload: Buffer) => void,
    private readonly onConnection: (connected: boolean) => void,
    private readonly log: Logger,
    /** A `variables` notice: the device's configuration variables changed (docs/variables.md). */
    private readonly onVariablesNotice: (payload: Buffer) => void = () => undefined,
  ) {}

  get connected(): boolean {
    return this.client?.connected ?? false;
  }

  start(): void {
    const client = connect(this.url, {
      clientId: this.uuid,
      username: this.uuid,
      password: this.apiKey,
      clean: false,
      keepalive: 30,
      connectTimeout: 10_000,
      reconnectPeriod: this.reconnectMs,
      protocolVersion: 4,
      // mqtt-packet otherwise makes a 2-byte Buffer for each of the 65,536 packet ids and lengths
      // on the first packet and keeps them: 6 MiB of the agent's heap, for a few packets a minute.
      writeCache: false,
    });
    this.client = client;
    client.on('connect', (connack) => {
      this.reconnectMs = MIN_RECONNECT_MS;
      client.options.reconnectPeriod = this.reconnectMs;
      this.log.info('mqtt connected', { sessionPresent: connack.sessionPresent });
      // Subscribing again on a present session is harmless and covers a session the broker lost.
      const topics = [deviceTopic(this.uuid, 'target'), deviceTopic(this.uuid, 'variables')];
      client.subscribe(topics, { qos: 1 }, (error) => {
        if (error) this.log.warn('mqtt subscribe failed', { error: error.message });
      });
      this.onConnection(true);
    });
    client.on('message', (topic, payload) => {
      if (topic === deviceTopic(this.uuid, 'target')) this.onNotice(payload);
      else if (topic === deviceTopic(this.uuid, 'variables')) this.onVariablesNotice(payload);
    });
    client.on('close', () => {
      // Every failed attempt doubles the wait before the next one.
      this.reconnectMs = Math.min(MAX_RECONNECT_MS, this.reconnectMs * 2);
      client.options.reconnectPeriod = this.reconnectMs;
      this.onConnection(false);
    });
    client.on('error', (error) => this.log.debug('mqtt error', { error: error.message }));
  }

  async publishState(message: DeviceStateMessage): Promise<boolean> {
    const client = this.client;
    if (!client?.connected) return false;
    try {
      // A PUBACK that does not come (link dropped mid-publish) falls back to HTTP.
      const acked = client
        .publishAsync(deviceTopic(this.uuid, 'state'), JSON.stringify(message), { qos: 1 })
        .then(() => true);
      const timeout = new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 5000).unref());
      return await Promise.race([acked, timeout]);
    } catch {
      return false;
    }
  }

  async stop(): Promise<void> {
    await this.client?.endAsync(true).catch(() => undefined);
  }
}
