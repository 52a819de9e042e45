import { readFileSync } from 'node:fs';
import { Server as HttpServer } from 'node:http';
import { AddressInfo, Server as NetServer, createServer as createNetServer } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { promisify } from 'node:util';
import { Logger } from '@nestjs/common';
import { Aedes, AedesOptions, AuthErrorCode, AuthenticateError, Client, Connection } from 'aedes';
import memoryPersistence from 'aedes-persistence';
import { Redis, RedisOptions } from 'ioredis';
import { RedisOutageMonitor, connectRedis } from '@ferry/storage';
import { WebSocketServer, createWebSocketStream } from 'ws';
import { FerryConfig } from '../config/config';
import {
  connectedClient,
  forgetClient,
  limitPacketSize,
  onClientConnectedElsewhere,
  SubscriptionStore,
  storeSubscriptionsOnce,
  willOwner,
} from './aedes-patches';
import { clusterEmitter } from './cluster-emitter';
import { RetainedStore, indexRetained } from './indexed-retained';
import {
  BrokerPolicy,
  ConnectRefusal,
  MqttIdentity,
  MqttRepository,
  OutgoingMessage,
  PublishVerdict,
  PublishedMessage,
} from './mqtt.repository';

/** A device's client id is its UUID (36 characters at most); Aedes's default limit is 23. */
const MAX_CLIENT_ID_LENGTH = 64;
/** MQTT packets larger than this cut the connection (payloads above MQTT_MAX_PAYLOAD_BYTES are only dropped). */
const TRANSPORT_SLACK_BYTES = 64 * 1024;

/** What the broker knows of a PUBLISH or a will, as the policy sees it. */
function message(packet: {
  topic: string;
  payload: Buffer | string;
  qos?: 0 | 1 | 2;
  retain?: boolean;
}): PublishedMessage {
  const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
  return { topic: packet.topic, payload, qos: packet.qos ?? 0, retain: packet.retain ?? false };
}

/**
 * The embedded Aedes broker (MQTT 3.1.1; Aedes does not speak MQTT 5) on `MQTT_PORT` over TCP, or TLS
 * when a certificate is configured, and optionally over WebSocket at `/mqtt` on the HTTP server. With
 * `MQTT_CLUSTER=redis`, sessions, retained messages and routing live in Redis, so every server process
 * serves any device and a publish in one reaches subscribers on all.
 *
 * The server itself publishes in-process ({@link publish}); it needs no network client of its own.
 */
export class EmbeddedMqttRepository extends MqttRepository {
  private readonly logger = new Logger('MqttBroker');
  private broker: Aedes | null = null;
  private server: NetServer | null = null;
  private websocket: WebSocketServer | null = null;
  private readonly redis: Redis[] = [];
  private readonly identities = new WeakMap<Client, MqttIdentity>();
  /** The connection of aedes-persistence-redis (MQTT_CLUSTER=redis). */
  private persistenceRedis: Redis | undefined;

  constructor(
    private readonly config: FerryConfig,
    private readonly httpServer: () => HttpServer | null,
    /** Where the cluster's Redis connections send their errors. */
    private readonly monitor: RedisOutageMonitor,
  ) {
    super();
  }

  async start(policy: BrokerPolicy): Promise<void> {
    // The last will of each CONNECT, kept from preConnect (which sees the packet) for authenticate.
    const wills = new WeakMap<Client, PublishedMessage>();
    const options: AedesOptions = {
      maxClientsIdLength: MAX_CLIENT_ID_LENGTH,
      connectTimeout: 10_000,
      // Notices to thousands of devices go out at once; Aedes's default of 100 serialises them.
      concurrency: 10_000,
      // How soon the cluster notices a dead peer (3 silent heartbeats) and publishes its clients' wills.
      heartbeatInterval: this.config.mqtt.heartbeatSeconds * 1000,
      preConnect: (client, packet, done) => {
        if (packet.will) wills.set(client, message(packet.will));
        done(null, true);
      },
      authenticate: (client, username, password, done) => {
        const source = sourceOf(client);
        policy
          .authenticate(client.id, username, password, source, wills.get(client) ?? null)
          .finally(() => {
            // The parser keeps the CONNECT packet for the life of the connection: without this, every
            // connected device's key would stay readable on the heap.
            password?.fill(0);
          })
          .then((result) => {
            if (typeof result === 'number') {
              done(refusal(result), false);
              return;
            }
            this.identities.set(client, result);
            done(null, true);
          })
          .catch(() => done(refusal(ConnectRefusal.ServerUnavailable), false));
      },
      authorizePublish: (client, packet, done) => {
        const decide = (verdict: PublishVerdict): void => {
          if (verdict === 'cut') {
            // Refused before Aedes stores or acknowledges anything; the error closes the connection.
            done(new Error(`publish on ${packet.topic} refused`));
            return;
          }
          if (verdict === 'drop') {
            // [MQTT-3.3.5-2] The server acknowledges and discards a publish it does not authorise (as
            // Mosquitto does) rather than closing the connection: a device with one bad report keeps
            // its session. The packet is steered to a topic no client may subscribe to, and emptied so
            // nothing downstream holds its bytes.
            packet.topic = '$ferry/dropped';
            packet.retain = false;
            packet.payload = Buffer.alloc(0);
          }
          done(null);
        };
        if (!client) {
          // A will of a client of a dead cluster peer: no connection, so no identity to trust.
          policy
            .acceptOrphanWill(willOwner(packet), message(packet))
            .then(decide)
            .catch(() => decide('drop'));
          return;
        }
        const identity = this.identities.get(client);
        if (!identity) {
          policy.dropped('unauthenticated');
          decide('drop');
          return;
        }
        decide(policy.acceptPublish(identity, message(packet)));
      },
      authorizeSubscribe: (client, subscription, done) => {
        const identity = this.identities.get(client);
        if (!identity || !policy.maySubscribe(identity, subscription.topic)) {
          // [MQTT-3.9.3] A refused filter is granted 0x80 (failure); the connection stays.
          done(null, null);
          return;
        }
        // Devices get at most QoS 1 (Ferry sends nothing at QoS 2).
        if (identity.kind === 'device' && subscription.qos > 1) subscription.qos = 1;
        done(null, subscription);
      },
      authorizeForward: (client, packet) => {
        const identity = this.identities.get(client);
        return identity && policy.mayReceive(identity, packet.topic) ? packet : null;
      },
    };
    if (this.config.mqtt.cluster === 'redis') this.clusterOptions(options);
    // The typings of aedes-persistence's callback API do not match the promise API Aedes 1.x calls.
    else options.persistence = indexRetained(memoryPersistence() as unknown as RetainedStore);
    const broker = new Aedes(options);
    // A device that reconnects to another process of a cluster takes its session over: this process
    // then closes the old connection. Registered before Aedes's own handler (in listen()) closes it,
    // so that close is not mistaken for the device going offline.
    const movedAway = new Set<string>();
    onClientConnectedElsewhere(broker, (clientId) => {
      movedAway.add(clientId);
      setTimeout(() => movedAway.delete(clientId), 10_000).unref();
    });
    await broker.listen();
    this.broker = broker;

    broker.on('clientReady', (client) => {
      const identity = this.identities.get(client);
      if (identity?.kind === 'device') policy.connection(identity.uuid, true);
    });
    broker.on('clientDisconnect', (client) => {
      const identity = this.identities.get(client);
      if (identity?.kind === 'device' && !movedAway.has(identity.uuid))
        policy.connection(identity.uuid, false);
    });
    broker.on('clientReady', (client) => movedAway.delete(client.id));
    broker.on('clientError', (client, error) => this.logger.debug(`client ${client.id}: ${error.message}`));
    broker.on('connectionError', (_client, error) => this.logger.debug(`connection: ${error.message}`));

    const maxPacket = this.config.mqtt.maxPayloadBytes + TRANSPORT_SLACK_BYTES;
    const handle = (conn: Connection, request?: Parameters<Aedes['handle']>[1]): void => {
      limitPacketSize(broker.handle(conn, request), maxPacket, () => policy.dropped('packet_too_large'));
    };

    const tls = this.config.mqtt.tls;
    this.server = tls
      ? createTlsServer({ cert: readFileSync(tls.certFile), key: readFileSync(tls.keyFile) }, (socket) =>
          handle(socket),
        )
      : createNetServer((socket) => handle(socket));
    await new Promise<void>((resolve, reject) => {
      this.server?.once('error', reject);
      this.server?.listen(this.config.mqtt.port, this.config.mqtt.host, () => resolve());
    });

    const http = this.config.mqtt.websocket ? this.httpServer() : null;
    if (http) {
      this.websocket = new WebSocketServer({ server: http, path: '/mqtt' });
      this.websocket.on('connection', (socket, request) => handle(createWebSocketStream(socket), request));
    }
  }

  private clusterOptions(options: AedesOptions): void {
    // Loaded only when clustering: a CommonJS package without types.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const persistence = require('aedes-persistence-redis') as (opts: object) => SubscriptionStore;
    const prefix = `${this.config.redisPrefix}mqtt:`;
    const connect = (extra: RedisOptions): Redis => {
      const redis = connectRedis(this.config.redis, extra);
      this.monitor.watch(redis);
      this.redis.push(redis);
      return redis;
    };
    this.persistenceRedis = connect({ keyPrefix: prefix, maxRetriesPerRequest: null });
    options.persistence = storeSubscriptionsOnce(persistence({ conn: this.persistenceRedis }));
    // Pub/sub channels are not per database: the prefix keeps separate deployments (and test runs) apart.
    options.mq = clusterEmitter(prefix, connect);
  }

  async publish(messages: OutgoingMessage[]): Promise<void> {
    const broker = this.broker;
    if (!broker) throw new Error('the MQTT broker is not running');
    await Promise.all(
      messages.map(
        (m) =>
          new Promise<void>((resolve, reject) =>
            broker.publish(
              {
                cmd: 'publish',
                topic: m.topic,
                payload: typeof m.payload === 'string' ? Buffer.from(m.payload) : m.payload,
                qos: m.qos,
                retain: m.retain,
                dup: false,
              },
              (error) => (error ? reject(error) : resolve()),
            ),
          ),
      ),
    );
  }

  async evict(uuid: string): Promise<void> {
    const broker = this.broker;
    if (!broker) return;
    const client = connectedClient(broker, uuid);
    if (client) await new Promise<void>((resolve) => client.close(() => resolve()));
    // The stored session (subscriptions, queued messages, its will, in every process of a cluster)
    // goes too, so nothing waits for a device that can never come back.
    await forgetClient(broker, uuid, this.persistenceRedis);
  }

  port(): number | null {
    const address = this.server?.address() as AddressInfo | null | undefined;
    return address?.port ?? null;
  }

  connectedClients(): number | null {
    return this.broker?.connectedClients ?? null;
  }

  async close(): Promise<void> {
    const server = this.server;
    const serverClosed = server?.listening
      ? promisify(server.close.bind(server))().catch((error: Error) => error)
      : Promise.resolve();
    const steps: (() => Promise<unknown>)[] = [
      async () => {
        for (const client of this.websocket?.clients ?? []) client.terminate();
        const websocket = this.websocket;
        if (websocket) await new Promise<void>((resolve) => websocket.close(() => resolve()));
      },
      async () => {
        const broker = this.broker;
        if (broker) await new Promise<void>((resolve) => broker.close(() => resolve()));
      },
      () => serverClosed,
    ];
    // Every step runs even when one fails.
    const results = await Promise.allSettled(steps.map((step) => step()));
    results.push(
      ...(await Promise.allSettled(
        this.redis.map(async (redis) => {
          // QUIT would wait for a Redis that is away.
          if (this.monitor.down || redis.status !== 'ready') redis.disconnect();
          else await redis.quit().catch(() => redis.disconnect());
        }),
      )),
    );
    for (const result of results)
      if (result.status === 'rejected') this.logger.warn(`closing the broker: ${String(result.reason)}`);
  }
}

/** The error Aedes turns into a CONNACK with this return code. */
function refusal(code: ConnectRefusal): AuthenticateError {
  // Same numbers as Aedes's const enum, which the type checker and the linter see differently.
  const returnCode = code as number as AuthErrorCode;
  return Object.assign(new Error(`connection refused (${code})`), { returnCode });
}

function sourceOf(client: Client): string {
  const conn = client.conn as { remoteAddress?: string };
  return client.req?.socket.remoteAddress ?? conn.remoteAddress ?? 'unknown';
}
