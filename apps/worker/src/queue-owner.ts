import { Redis } from 'ioredis';
import { queueOwnerKey } from '@ferry/storage';
import { WorkerConfig } from './config/worker-config';

/**
 * The worker's DATA_DIR belongs to another install than the queue namespace it would serve: it would
 * take that install's delta jobs without seeing their blobs.
 */
export class QueueOwnerMismatchError extends Error {
  constructor(config: WorkerConfig, owner: string) {
    super(
      `DATA_DIR ${config.dataDir} is install ${config.installId}, but the queue namespace ` +
        `"${config.queuePrefix}" (FERRY_QUEUE_PREFIX) belongs to install ${owner}, whose server registered it: ` +
        `this worker would take that install's delta jobs without seeing their blobs. Point DATA_DIR at ` +
        `that server's DATA_DIR, or unset FERRY_QUEUE_PREFIX so the worker serves its DATA_DIR's install`,
    );
    this.name = new.target.name;
  }
}

/**
 * Which install the queue namespace belongs to (the server records it at start and every 15 s), or
 * null when no server registered it yet; throws {@link QueueOwnerMismatchError} when it is not this
 * worker's DATA_DIR's install. `redis` is a connected client.
 */
export async function checkQueueOwner(redis: Redis, config: WorkerConfig): Promise<string | null> {
  const owner = await redis.get(queueOwnerKey(config.queuePrefix));
  if (owner !== null && owner !== config.installId) throw new QueueOwnerMismatchError(config, owner);
  return owner;
}
