import { readFileSync } from 'node:fs';
import { Server as HttpServer } from 'node:http';
import { AddressInfo, Server as NetServer, createServer as createNetServer } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { promisify } from 'node:util';
import { Logger } from '@nestjs/common';
import { Aedes, AedesOptions, AuthErrorCode, AuthenticateError, Client, Connection } from 'aedes';
import memoryPersistence from 'aedes-persistence';
import { Redis } from 'ioredis';
import { WebSocketServer, createWebSocketStream } from 'ws';
import { FerryConfig } from '../config/config';
import { RetainedStore, indexRetained } from './indexed-retained';
import {
  BrokerPolicy,
  ConnectRefusal,
  MqttIdentity,
  MqttRepository,
  OutgoingMessage,
} from './mqtt.repository';

/** A device's client id is its UUID (36 characters at most); Aedes's default limit is 23. */
const MAX_CLIENT_ID_LENGTH = 64;
/** MQTT packets larger than this cut the connection (payloads above MQTT_MAX_PAYLOAD_BYTES are only dropped). */
const TRANSPORT_SLACK_BYTES = 64 * 1024;

/** The part of Aedes's message emitter (mqemitter) used here. */
interface MessageEmitter {
  on(topic: string, handler: (packet: { topic: string; payload: Buffer }, done: () => void) => void): void;
}

interface Parser {
  packet: { length: number };
  _parseLength(): boolean;
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

  constructor(
    private readonly config: FerryConfig,
    private readonly httpServer: () => HttpServer | null,
  ) {
    super();
  }

  async start(policy: BrokerPolicy): Promise<void> {
    const options: AedesOptions = {
      maxClientsIdLength: MAX_CLIENT_ID_LENGTH,
      connectTimeout: 10_000,
      // Notices to thousands of devices go out at once; Aedes's default of 100 serialises them.
      concurrency: 10_000,
      authenticate: (client, username, password, done) => {
        const source = sourceOf(client);
        policy
          .authenticate(client.id, username, password, source)
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
        // A null client is the broker itself (a will left by a dead cluster peer).
        const identity: MqttIdentity | undefined = client ? this.identities.get(client) : { kind: 'server' };
        const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
        if (!identity) policy.dropped('unauthenticated');
        if (!identity || !policy.acceptPublish(identity, packet.topic, payload, packet.retain)) {
          // [MQTT-3.3.5-2] The server acknowledges and discards a publish it does not authorise (as
          // Mosquitto does) rather than closing the connection: a device with one bad report keeps its
          // session. The packet is steered to a topic no client may subscribe to.
          packet.topic = '$ferry/dropped';
          packet.retain = false;
        }
        done(null);
      },
      authorizeSubscribe: (client, subscription, done) => {
        const identity = this.identities.get(client);
        // [MQTT-3.9.3] A refused filter is granted 0x80 (failure); the connection stays.
        done(null, identity && policy.maySubscribe(identity, subscription.topic) ? subscription : null);
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
    const mq = (broker as unknown as { mq: MessageEmitter }).mq;
    mq.on('$SYS/+/new/clients', (packet, done) => {
      const brokerId = packet.topic.split('/')[1];
      if (brokerId !== broker.id) {
        const clientId = packet.payload.toString();
        movedAway.add(clientId);
        setTimeout(() => movedAway.delete(clientId), 10_000).unref();
      }
      done();
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
      const client = broker.handle(conn, request);
      // Aedes has no packet size limit: stop a client before it makes the broker buffer a huge packet.
      const parser = (client as unknown as { _parser: Parser })._parser;
      const parseLength = parser._parseLength.bind(parser);
      parser._parseLength = () => {
        const done = parseLength();
        if (done && parser.packet.length > maxPacket) {
          policy.dropped('packet_too_large');
          conn.destroy();
          return false;
        }
        return done;
      };
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
    // Loaded only when clustering: both are CommonJS packages without types.
    /* eslint-disable @typescript-eslint/no-require-imports */
    const persistence = require('aedes-persistence-redis') as (opts: object) => unknown;
    const { MQEmitterRedisPrefix } = require('mqemitter-redis') as {
      MQEmitterRedisPrefix: new (prefix: string, opts: object) => unknown;
    };
    /* eslint-enable @typescript-eslint/no-require-imports */
    const prefix = `${this.config.redisPrefix}mqtt:`;
    const connect = (): Redis => {
      const redis = new Redis(this.config.redisUrl, { keyPrefix: prefix, maxRetriesPerRequest: null });
      redis.on('error', (error: Error) => this.logger.warn(`broker Redis: ${error.message}`));
      this.redis.push(redis);
      return redis;
    };
    options.persistence = persistence({ conn: connect() });
    // Pub/sub channels are not per database: the prefix keeps separate deployments (and test runs) apart.
    const pubsub = (): Redis => {
      const redis = new Redis(this.config.redisUrl, { maxRetriesPerRequest: null });
      redis.on('error', (error: Error) => this.logger.warn(`broker Redis: ${error.message}`));
      this.redis.push(redis);
      return redis;
    };
    options.mq = new MQEmitterRedisPrefix(prefix, { subConn: pubsub(), pubConn: pubsub() });
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
    const client = (broker as unknown as { clients: Record<string, Client | undefined> }).clients[uuid];
    if (client) await new Promise<void>((resolve) => client.close(() => resolve()));
    // The stored session (subscriptions, queued messages) goes too, so nothing waits for a device
    // that can never come back.
    const persistence = (
      broker as unknown as { persistence: { cleanSubscriptions(c: object): Promise<unknown> } }
    ).persistence;
    await persistence.cleanSubscriptions({ id: uuid }).catch(() => undefined);
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
      ...(await Promise.allSettled(this.redis.map((redis) => redis.quit().catch(() => redis.disconnect())))),
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
