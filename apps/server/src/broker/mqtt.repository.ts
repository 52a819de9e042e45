/**
 * The server's side of MQTT, whichever broker carries it: the embedded Aedes broker
 * ({@link EmbeddedMqttRepository}) or an external one reached as a client ({@link ExternalMqttRepository}).
 * Repositories do the I/O; every decision (who may connect, publish, subscribe; what a payload means)
 * is asked of the {@link BrokerPolicy} the broker service hands to `start()`.
 */

/** Who an MQTT connection is, once authenticated. */
export type MqttIdentity = { kind: 'server' } | { kind: 'device'; uuid: string; fleetId: string };

/** CONNACK return codes of MQTT 3.1.1 (table 3.1) a broker refuses a connection with. */
export enum ConnectRefusal {
  IdentifierRejected = 2,
  ServerUnavailable = 3,
  BadUsernameOrPassword = 4,
  NotAuthorized = 5,
}

/** A PUBLISH (or a last will) as the policy sees it. */
export interface PublishedMessage {
  topic: string;
  payload: Buffer;
  qos: 0 | 1 | 2;
  retain: boolean;
}

/**
 * What becomes of a publish: `accept` it, `drop` it (acknowledged and discarded, the connection
 * stays), or `cut` the connection before the broker stores anything of it.
 */
export type PublishVerdict = 'accept' | 'drop' | 'cut';

/** What a broker asks of the broker service. Must not throw. */
export interface BrokerPolicy {
  /** Who is connecting; `will` is the last will of the CONNECT, checked like a publish. */
  authenticate(
    clientId: string,
    username: string | undefined,
    password: Buffer | undefined,
    source: string,
    will: PublishedMessage | null,
  ): Promise<MqttIdentity | ConnectRefusal>;
  /** Decides on a publish from a connected client (or its will); also ingests what devices send. */
  acceptPublish(identity: MqttIdentity, message: PublishedMessage): PublishVerdict;
  /**
   * Decides on a last will the broker publishes with no connection behind it (left by a client of a
   * cluster peer that died): checked against its owner's rights, never trusted as the server's.
   */
  acceptOrphanWill(owner: string | undefined, message: PublishedMessage): Promise<PublishVerdict>;
  maySubscribe(identity: MqttIdentity, filter: string): boolean;
  mayReceive(identity: MqttIdentity, topic: string): boolean;
  /** A device's connection came up or went down (embedded broker only: it sees connections). */
  connection(uuid: string, online: boolean): void;
  /** A message the server's own client received (external broker: device state and presence). */
  received(topic: string, payload: Buffer): void;
  /** A hostile or broken connection the broker cut (counted like dropped messages). */
  dropped(reason: string): void;
}

/** One message the server sends. */
export interface OutgoingMessage {
  topic: string;
  payload: Buffer | string;
  qos: 0 | 1;
  retain: boolean;
}

export abstract class MqttRepository {
  /** Starts the broker or connects to it. */
  abstract start(policy: BrokerPolicy): Promise<void>;
  /** Publishes every message; resolves when the broker has taken all of them (QoS 1: acknowledged). */
  abstract publish(messages: OutgoingMessage[]): Promise<void>;
  /** Drops a device's connection and its stored session at once (no-op on an external broker). */
  abstract evict(uuid: string): Promise<void>;
  /** The port the embedded broker listens on, or null with an external broker. */
  abstract port(): number | null;
  /** Connected clients (embedded broker only; null otherwise). */
  abstract connectedClients(): number | null;
  abstract close(): Promise<void>;
}
