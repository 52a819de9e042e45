import { Controller, Get, Inject } from '@nestjs/common';
import { ApiTags } from '@nestjs/swagger';
import { Redis } from 'ioredis';
import { Kysely, sql } from 'kysely';
import { UnavailableError } from '@ferry/protocol';
import { Public } from '../auth/auth.decorators';
import { DATABASE } from '../database/database.module';
import { Database } from '../database/database.types';
import { REDIS } from '../redis/redis.module';

async function within<T>(ms: number, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

// Kept rather than @nestjs/terminus: two probes with a 2 s bound are these lines, and Terminus's
// answer shape ({status, info, error, details}) would change what load balancers and docs expect.
@ApiTags('health')
@Controller()
@Public()
export class HealthController {
  constructor(
    @Inject(DATABASE) private readonly db: Kysely<Database>,
    @Inject(REDIS) private readonly redis: Redis,
  ) {}

  /** The process is alive. */
  @Get('healthz')
  healthz(): { status: 'ok' } {
    return { status: 'ok' };
  }

  /** The process can serve: database and Redis answer. 503 naming what does not. */
  @Get('readyz')
  async readyz(): Promise<{ status: 'ready'; database: 'ok'; redis: 'ok' }> {
    const problems: string[] = [];
    await within(2000, sql`select 1`.execute(this.db)).catch((e: Error) =>
      problems.push(`database: ${e.message}`),
    );
    await within(2000, this.redis.ping()).catch((e: Error) => problems.push(`redis: ${e.message}`));
    if (problems.length > 0) throw new UnavailableError(`not ready: ${problems.join('; ')}`, { problems });
    return { status: 'ready', database: 'ok', redis: 'ok' };
  }
}
