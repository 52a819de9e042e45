import { Aedes, Client } from 'aedes';
import { Redis } from 'ioredis';

/**
 * Every place where Ferry relies on Aedes (and its persistences) past their public API, in one file.
 * Aedes, aedes-persistence and aedes-persistence-redis are pinned to exact versions in package.json;
 * aedes-patches.spec.ts has a test per function here that fails if an upgrade changes what it relies
 * on. Nothing else in Ferry touches a private field of Aedes.
 */

/** The part of mqtt-packet's parser (inside each Aedes client) that reads a packet's length. */
interface Parser {
  packet: { length: number };
  _parseLength(): boolean;
}

/** The part of Aedes's message emitter (mqemitter) used here. */
interface MessageEmitter {
  on(topic: string, handler: (packet: { topic: string; payload: Buffer }, done: () => void) => void): void;
}

/** The parts of an Aedes persistence used to forget a client (documented persistence API). */
interface Persistence {
  cleanSubscriptions(client: { id: string }): Promise<unknown>;
  cleanIncoming?(client: { id: string }): Promise<unknown>;
  outgoingStream(client: { id: string }): AsyncIterable<{ messageId?: number }>;
  outgoingClearMessageId(client: { id: string }, packet: { messageId?: number }): Promise<unknown>;
  delWill(client: { id: string; brokerId: string }): Promise<unknown>;
}

/**
 * Aedes has no packet size limit: the parser buffers a packet whatever its announced length. Cuts the
 * connection as soon as a packet's length is read and exceeds `maxBytes`, before its body is buffered.
 */
export function limitPacketSize(client: Client, maxBytes: number, onTooLarge: () => void): void {
  const parser = (client as unknown as { _parser: Parser })._parser;
  const parseLength = parser._parseLength.bind(parser);
  parser._parseLength = () => {
    const done = parseLength();
    if (done && parser.packet.length > maxBytes) {
      onTooLarge();
      client.conn.destroy();
      return false;
    }
    return done;
  };
}

/**
 * Calls `handler` with the client id whenever another broker of the cluster announces a new
 * connection of a client (Aedes's `$SYS/{brokerId}/new/clients`). Registered before `listen()`, so it
 * runs before Aedes's own handler closes this broker's older connection of that client.
 */
export function onClientConnectedElsewhere(broker: Aedes, handler: (clientId: string) => void): void {
  const mq = (broker as unknown as { mq: MessageEmitter }).mq;
  mq.on('$SYS/+/new/clients', (packet, done) => {
    if (packet.topic.split('/')[1] !== broker.id) handler(packet.payload.toString());
    done();
  });
}

/** The method of an Aedes persistence that stores a client's subscriptions (documented persistence API). */
export interface SubscriptionStore {
  addSubscriptions(client: { id: string }, subscriptions: object[]): Promise<unknown>;
}

/**
 * Aedes 1.2 stores the subscriptions of a SUBSCRIBE once per filter, each time with all of the
 * packet's filters (lib/handlers/subscribe.js, storeSubscriptions). aedes-persistence-redis then waits
 * for its own cluster broadcast of each store under one key per client and first filter: with two or
 * more filters the second wait replaces the first, which never ends, and the client never gets its
 * SUBACK (a device subscribing to its target and variables topics at once was never notified).
 * Makes the stores of one SUBSCRIBE (one array of filters) share a single call.
 */
export function storeSubscriptionsOnce<P extends SubscriptionStore>(persistence: P): P {
  const stores = new WeakMap<object[], Promise<unknown>>();
  const add = persistence.addSubscriptions.bind(persistence);
  persistence.addSubscriptions = (client, subscriptions) => {
    let stored = stores.get(subscriptions);
    if (!stored) {
      stored = add(client, subscriptions);
      stores.set(subscriptions, stored);
    }
    return stored;
  };
  return persistence;
}

/** This broker's live connection of `clientId`, if any. */
export function connectedClient(broker: Aedes, clientId: string): Client | undefined {
  return (broker as unknown as { clients: Record<string, Client | undefined> }).clients[clientId];
}

/**
 * Whose will a publish without a client is: Aedes publishes the stored wills of clients of a dead
 * cluster peer with `client = null`, and the persistence stamps every stored will with the id of the
 * client that left it. Undefined for any other publish without a client.
 */
export function willOwner(packet: object): string | undefined {
  const clientId = (packet as { clientId?: unknown }).clientId;
  return typeof clientId === 'string' ? clientId : undefined;
}

/**
 * Forgets everything a broker stores for `clientId`: subscriptions, queued outgoing messages, QoS 2
 * packets awaiting PUBREL and the will, on this broker and, with `redis` (the connection of
 * aedes-persistence-redis, key prefix included), those left by any broker of the cluster.
 */
export async function forgetClient(broker: Aedes, clientId: string, redis?: Redis): Promise<void> {
  const persistence = (broker as unknown as { persistence: Persistence }).persistence;
  const client = { id: clientId };
  // Before cleanSubscriptions, which drops the Redis list of queued messages.
  if (redis) await forgetInRedis(redis, clientId);
  await persistence.cleanSubscriptions(client);
  await persistence.delWill({ id: clientId, brokerId: broker.id });
  if (redis) return;
  await persistence.cleanIncoming?.(client);
  // The in-memory persistence clears one queued message per call, matched by message id.
  const queued: { messageId?: number }[] = [];
  for await (const packet of persistence.outgoingStream(client)) queued.push(packet);
  for (const packet of queued) await persistence.outgoingClearMessageId(client, packet);
}

/**
 * aedes-persistence-redis 11 keeps, per client: `client:{id}` (subscriptions, see cleanSubscriptions),
 * `outgoing:{id}` (the list of queued messages: keys of shared `packet:{broker}:{counter}` entries, each
 * with an `…:offlineCount` of the clients it still waits for, or `outgoing:{id}:{broker}:{counter}`
 * copies), `outgoing-id:{id}:{messageId}`, `incoming:{id}:{messageId}` (it has no cleanIncoming), and
 * `will:{brokerId}:{id}` listed in `will`. Its cleanSubscriptions drops the `outgoing:{id}` list but
 * leaves the shared packets waiting for the client forever.
 */
async function forgetInRedis(redis: Redis, clientId: string): Promise<void> {
  const prefix = redis.options.keyPrefix ?? '';
  const id = encodeURIComponent(clientId);
  const keys: string[] = [`outgoing:${id}`];
  for (const entry of await redis.lrange(`outgoing:${id}`, 0, -1)) {
    const [broker, counter] = entry.split(':').slice(-2);
    const packet = `packet:${broker}:${counter}`;
    if ((await redis.decr(`${packet}:offlineCount`)) <= 0) keys.push(packet, `${packet}:offlineCount`);
  }
  for (const pattern of [`outgoing:${id}:*`, `incoming:${id}:*`, `outgoing-id:${id}:*`, `will:*:${id}`]) {
    // SCAN does not apply ioredis's keyPrefix; the keys it returns carry it.
    let cursor = '0';
    do {
      const [next, found] = await redis.scan(cursor, 'MATCH', `${prefix}${pattern}`, 'COUNT', 1000);
      cursor = next;
      keys.push(...found.map((key) => key.slice(prefix.length)));
    } while (cursor !== '0');
  }
  for (const key of keys.filter((k) => k.startsWith('will:'))) await redis.lrem('will', 0, key);
  await redis.del(...keys);
}
