import { Redis, RedisOptions } from 'ioredis';
import { ErrorEmitter } from '@ferry/storage';
import { PacketEmitter, emitOnceSubscribed } from './emit-once-subscribed';

/** mqemitter-redis as Aedes uses it (`options.mq`), plus the error events of its connections. */
export interface ClusterEmitter extends PacketEmitter {
  state: ErrorEmitter;
}

/**
 * The message routing between the server processes of a cluster (`MQTT_CLUSTER=redis`):
 * mqemitter-redis over two connections `connect` makes, one that publishes and one that subscribes.
 *
 * The subscribing one skips ioredis's ready check. ioredis writes a SUBSCRIBE that comes while a
 * connection is still being set up (Aedes subscribes as devices connect, also during a reconnection)
 * before its ready check's INFO; Redis refuses INFO in subscriber mode, ioredis drops the connection
 * and reconnects without that channel, and mqemitter-redis, which counts it as subscribed, never asks
 * again: the devices of that channel would hear nothing until the process restarts. The check only
 * waits for a Redis still loading its data or tells a replica from the primary; a subscriber needs
 * neither (a replica passes on what is published on its primary).
 */
export function clusterEmitter(prefix: string, connect: (extra: RedisOptions) => Redis): ClusterEmitter {
  // Loaded only when clustering: a CommonJS package without types.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { MQEmitterRedisPrefix } = require('mqemitter-redis') as {
    MQEmitterRedisPrefix: new (prefix: string, opts: object) => ClusterEmitter;
  };
  const subConn = connect({ maxRetriesPerRequest: null, enableReadyCheck: false });
  const pubConn = connect({ maxRetriesPerRequest: null });
  const mq = new MQEmitterRedisPrefix(prefix, { subConn, pubConn });
  // mqemitter-redis re-emits its connections' errors on `state`: unheard, the first one (Redis
  // restarting, a Sentinel failover) would end the process. The caller watches the connections.
  mq.state.on('error', () => undefined);
  emitOnceSubscribed(mq, subConn);
  return mq;
}
