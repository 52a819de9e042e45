import { randomBytes } from 'node:crypto';
import { Aedes } from 'aedes';
import { Redis } from 'ioredis';

/**
 * Leaves a last will in a Redis-backed Aedes cluster (aedes-persistence-redis under `{prefix}mqtt:`)
 * as a peer that then died would: stored by a real Aedes broker with a made-up id that never sends a
 * heartbeat. Live peers publish it, with no client, once their will sweep runs. Stands in for wills a
 * server stored before it refused them at CONNECT (an older Ferry, or one that crashed mid-check).
 */
export async function storeWillOfDeadPeer(
  redisUrl: string,
  prefix: string,
  clientId: string,
  will: { topic: string; payload: Buffer; qos: 0 | 1; retain: boolean },
): Promise<void> {
  /* eslint-disable @typescript-eslint/no-require-imports */
  const persistence = require('aedes-persistence-redis') as (opts: object) => unknown;
  /* eslint-enable @typescript-eslint/no-require-imports */
  const redis = new Redis(redisUrl, { keyPrefix: `${prefix}mqtt:` });
  // Its own in-process message bus: the peer never announces itself to the cluster.
  const broker = new Aedes({
    id: `dead-peer-${randomBytes(4).toString('hex')}`,
    persistence: persistence({ conn: redis }),
  });
  await broker.listen();
  const store = (broker as unknown as { persistence: { putWill(c: object, p: object): Promise<void> } })
    .persistence;
  await store.putWill({ id: clientId }, { cmd: 'publish', dup: false, ...will });
  await new Promise<void>((resolve) => broker.close(() => resolve()));
  await redis.quit();
}
