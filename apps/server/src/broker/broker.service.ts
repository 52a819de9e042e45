import { randomBytes, timingSafeEqual, createHash } from 'node:crypto';
import { Inject, Injectable, Logger, OnApplicationBootstrap, OnModuleDestroy } from '@nestjs/common';
import { Subscription, filter } from 'rxjs';
import {
  deviceMayPublish,
  deviceMayReceive,
  deviceMaySubscribe,
  deviceTopic,
  isDeviceUuid,
  parseDevicePayload,
  parseDeviceTopic,
} from '@ferry/protocol';
import { secretMatches } from '../auth/secrets';
import { Clock } from '../clock/clock';
import { FailureLimit, FailureLimiter } from '../limits/failure-limiter.service';
import { FERRY_CONFIG } from '../config/config.module';
import { FerryConfig } from '../config/config';
import { DeviceStateService } from '../device-state/device-state.service';
import { DeviceEvents } from '../devices/device-events';
import { DevicesRepository } from '../devices/devices.repository';
import { EventBus } from '../events/event-bus.service';
import {
  BrokerPolicy,
  ConnectRefusal,
  MqttIdentity,
  MqttRepository,
  PublishVerdict,
  PublishedMessage,
} from './mqtt.repository';

/** Why a message from a device was dropped; counted per reason. */
export type DropReason =
  | 'forbidden_topic'
  | 'too_large'
  | 'malformed_json'
  | 'invalid_message'
  | 'retained_state'
  | 'packet_too_large'
  | 'qos2'
  | 'forbidden_will'
  | 'orphan_will';

export interface BrokerStats {
  /** `embedded` Aedes or an `external` broker. */
  mode: 'embedded' | 'external';
  port: number | null;
  connectedClients: number | null;
  accepted: number;
  dropped: Record<string, number>;
  refusedConnections: number;
}

/** Failed MQTT logins one address may make over all identities, as a multiple of the per-identity limit. */
const ADDRESS_LIMIT_FACTOR = 10;

/** A hash compared in constant time when the username is unknown, so timing does not tell. */
const DUMMY_HASH = createHash('sha256').update('ferry-no-such-device').digest('hex');

function sameSecret(presented: string, expected: string): boolean {
  const a = createHash('sha256').update(presented).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

/**
 * The rules of Ferry's MQTT: who may connect (devices by UUID and API key, the server by its own
 * credentials), what each may publish and subscribe to (deny by default, docs/protocol.md), what a
 * device's payloads mean (validated, then handed to {@link DeviceStateService}), and dropping a
 * deprovisioned device at once, in every server process.
 */
@Injectable()
export class BrokerService implements BrokerPolicy, OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger(BrokerService.name);
  /** The server's own MQTT identity: configured, or made up at start for the embedded broker. */
  readonly serverCredentials: { username: string; password: string };
  private readonly counters = { accepted: 0, refusedConnections: 0, dropped: {} as Record<string, number> };
  private readonly subscriptions: Subscription[] = [];
  /** Devices being evicted: their disconnect must not publish a new retained presence. */
  private readonly evicting = new Set<string>();

  constructor(
    private readonly mqtt: MqttRepository,
    private readonly devices: DevicesRepository,
    private readonly state: DeviceStateService,
    private readonly deviceEvents: DeviceEvents,
    private readonly bus: EventBus,
    private readonly clock: Clock,
    private readonly failures: FailureLimiter,
    @Inject(FERRY_CONFIG) private readonly config: FerryConfig,
  ) {
    this.serverCredentials = config.mqtt.serverCredentials ?? {
      username: `ferry-server-${randomBytes(6).toString('hex')}`,
      password: randomBytes(32).toString('base64url'),
    };
  }

  async onApplicationBootstrap(): Promise<void> {
    await this.mqtt.start(this);
    // Deprovisioning in any process reaches every process through the event bus.
    this.subscriptions.push(
      this.deviceEvents.deprovisioned$.subscribe(({ uuid, fleetId }) =>
        this.bus.publish([{ type: 'device.deprovisioned', fleetId, at: this.clock.iso(), data: { uuid } }]),
      ),
      this.bus.events$.pipe(filter((e) => e.type === 'device.deprovisioned')).subscribe((event) => {
        const uuid = event.data.uuid;
        if (typeof uuid === 'string') void this.evict(uuid);
      }),
    );
    const port = this.mqtt.port();
    this.logger.log(
      port === null
        ? `using the MQTT broker at ${this.config.mqtt.externalUrl}`
        : `MQTT broker listening on ${this.config.mqtt.host}:${port}${this.config.mqtt.tls ? ' (TLS)' : ''}` +
            `${this.config.mqtt.websocket ? ', WebSocket at /mqtt' : ''}` +
            `${this.config.mqtt.cluster === 'redis' ? ', clustered through Redis' : ''}`,
    );
  }

  async onModuleDestroy(): Promise<void> {
    for (const s of this.subscriptions) s.unsubscribe();
    await this.mqtt.close();
  }

  /** The port the embedded broker listens on (the real one when `MQTT_PORT=0`); null with `MQTT_URL`. */
  port(): number | null {
    return this.mqtt.port();
  }

  stats(): BrokerStats {
    return {
      mode: this.config.mqtt.externalUrl ? 'external' : 'embedded',
      port: this.mqtt.port(),
      connectedClients: this.mqtt.connectedClients(),
      accepted: this.counters.accepted,
      dropped: { ...this.counters.dropped },
      refusedConnections: this.counters.refusedConnections,
    };
  }

  async authenticate(
    clientId: string,
    username: string | undefined,
    password: Buffer | undefined,
    source: string,
    will: PublishedMessage | null,
  ): Promise<MqttIdentity | ConnectRefusal> {
    const limits = this.loginLimits(username, source);
    const refuse = async (code: ConnectRefusal, counts = true): Promise<ConnectRefusal> => {
      this.counters.refusedConnections += 1;
      if (counts) await this.failures.fail(limits);
      return code;
    };
    try {
      await this.failures.check(limits, 'MQTT login');
    } catch {
      return refuse(ConnectRefusal.ServerUnavailable, false);
    }
    // [MQTT-3.1.2-19..22] no username: anonymous, which Ferry never allows.
    if (username === undefined || password === undefined) return refuse(ConnectRefusal.NotAuthorized);
    const secret = password.length <= 512 ? password.toString('utf8') : '';
    if (sameSecret(username, this.serverCredentials.username)) {
      return sameSecret(secret, this.serverCredentials.password)
        ? { kind: 'server' }
        : refuse(ConnectRefusal.BadUsernameOrPassword);
    }
    const device = isDeviceUuid(username) ? await this.devices.find(username) : null;
    if (!secretMatches(secret, device?.keyHash ?? DUMMY_HASH) || !device)
      return refuse(ConnectRefusal.BadUsernameOrPassword);
    // A device's client id is its UUID: otherwise one device could take over another's session
    // ([MQTT-3.1.4-2] drops the older connection with the same id).
    if (clientId !== device.uuid) return refuse(ConnectRefusal.IdentifierRejected, false);
    // The broker publishes a will when the connection dies, possibly from another process of a
    // cluster with no connection behind it: a will the device could not publish itself is refused
    // now, at CONNECT, not found out later.
    if (will && !this.mayLeaveWill(device.uuid, will)) {
      this.dropped('forbidden_will');
      return refuse(ConnectRefusal.NotAuthorized, false);
    }
    this.state.knowDevice(device.uuid, device.fleetId);
    return { kind: 'device', uuid: device.uuid, fleetId: device.fleetId };
  }

  /**
   * Failed logins are limited per presented identity at each address (`MQTT_AUTH_FAILURES_PER_MINUTE`),
   * so bad keys for one device never lock out another behind the same address, and per address over
   * all identities at ten times that, so one address cannot try identity after identity. There is no
   * limit per identity over all addresses: anyone who knows a device's UUID could lock it out.
   */
  private loginLimits(username: string | undefined, source: string): FailureLimit[] {
    const perMinute = this.config.mqtt.authFailuresPerMinute;
    return [
      { scope: 'mqtt-login', key: `${username ?? ''}@${source}`, perMinute },
      { scope: 'mqtt-address', key: source, perMinute: perMinute * ADDRESS_LIMIT_FACTOR },
    ];
  }

  acceptPublish(identity: MqttIdentity, message: PublishedMessage): PublishVerdict {
    const { topic, payload, retain } = message;
    if (identity.kind === 'server') {
      // A tool with the server's credentials may publish a device's presence.
      const parsed = parseDeviceTopic(topic);
      if (parsed?.kind === 'presence') this.ingest(parsed.uuid, 'presence', payload);
      return 'accept';
    }
    // Devices need no QoS 2, and the broker keeps a QoS 2 publish until its PUBREL: a device that
    // never releases them would grow the broker's memory (or Redis) without bound.
    if (message.qos === 2) {
      this.dropped('qos2');
      return 'cut';
    }
    if (!deviceMayPublish(identity.uuid, topic)) return this.drop('forbidden_topic');
    const kind = topic.endsWith('/state') ? 'state' : 'presence';
    // A retained state would be replayed to the server's client after every reconnect.
    if (kind === 'state' && retain) return this.drop('retained_state');
    return this.ingest(identity.uuid, kind, payload) ? 'accept' : 'drop';
  }

  async acceptOrphanWill(owner: string | undefined, message: PublishedMessage): Promise<PublishVerdict> {
    // Never the server's: a will with no connection behind it has the rights of the device that left
    // it, if that device still exists, and no others.
    if (owner === undefined || !isDeviceUuid(owner)) return this.drop('orphan_will');
    if (!this.mayLeaveWill(owner, message)) return this.drop('forbidden_will');
    const device = await this.devices.find(owner).catch(() => null);
    if (!device) return this.drop('orphan_will');
    return this.ingest(owner, 'presence', message.payload) ? 'accept' : 'drop';
  }

  /** A device's last will may only be its own presence, at QoS 0 or 1, with a valid presence message. */
  private mayLeaveWill(uuid: string, will: PublishedMessage): boolean {
    if (will.topic !== deviceTopic(uuid, 'presence') || will.qos === 2) return false;
    const parsed = parseDevicePayload('presence', will.payload, this.config.mqtt.maxPayloadBytes);
    return parsed.ok && parsed.message !== null;
  }

  maySubscribe(identity: MqttIdentity, filter: string): boolean {
    if (identity.kind === 'server') return true;
    return deviceMaySubscribe(identity.uuid, filter);
  }

  mayReceive(identity: MqttIdentity, topic: string): boolean {
    if (identity.kind === 'server') return true;
    return deviceMayReceive(identity.uuid, topic);
  }

  connection(uuid: string, online: boolean): void {
    if (this.evicting.has(uuid)) return;
    const at = this.clock.iso();
    this.state.presence(uuid, online, at);
    // Retained, so a dashboard or tool subscribing later sees the device's presence at once.
    void this.mqtt
      .publish([
        {
          topic: deviceTopic(uuid, 'presence'),
          payload: JSON.stringify({ status: online ? 'online' : 'offline', timestamp: at }),
          qos: 1,
          retain: true,
        },
      ])
      .catch((error: Error) => this.logger.debug(`presence of ${uuid} not published: ${error.message}`));
  }

  received(topic: string, payload: Buffer): void {
    const parsed = parseDeviceTopic(topic);
    if (!parsed || (parsed.kind !== 'state' && parsed.kind !== 'presence') || !isDeviceUuid(parsed.uuid)) {
      this.drop('forbidden_topic');
      return;
    }
    this.ingest(parsed.uuid, parsed.kind, payload);
  }

  dropped(reason: string): void {
    this.counters.dropped[reason] = (this.counters.dropped[reason] ?? 0) + 1;
  }

  /** Validates a device's payload and hands it on; false (dropped and counted) when it is bad. */
  private ingest(uuid: string, kind: 'state' | 'presence', payload: Buffer): boolean {
    const parsed = parseDevicePayload(kind, payload, this.config.mqtt.maxPayloadBytes);
    if (!parsed.ok) {
      this.dropped(parsed.reason);
      return false;
    }
    const receivedAt = this.clock.iso();
    if (parsed.kind === 'state') {
      this.state.report(uuid, parsed.message, receivedAt);
    } else if (parsed.message) {
      this.state.presence(uuid, parsed.message.status === 'online', receivedAt);
    } else {
      // An empty retained presence clears it (deprovisioning does that): nothing to ingest.
      return true;
    }
    this.counters.accepted += 1;
    return true;
  }

  private drop(reason: DropReason): 'drop' {
    this.dropped(reason);
    return 'drop';
  }

  private async evict(uuid: string): Promise<void> {
    this.evicting.add(uuid);
    this.state.forget(uuid);
    try {
      await this.mqtt.evict(uuid);
      // Empty retained payloads delete the retained notices and presence [MQTT-3.3.1-10].
      await this.mqtt.publish(
        (['target', 'variables', 'presence'] as const).map((kind) => ({
          topic: deviceTopic(uuid, kind),
          payload: Buffer.alloc(0),
          qos: 1 as const,
          retain: true,
        })),
      );
    } catch (error) {
      this.logger.warn(`could not evict deprovisioned device ${uuid}: ${(error as Error).message}`);
    } finally {
      this.evicting.delete(uuid);
      this.state.forget(uuid);
    }
  }
}
