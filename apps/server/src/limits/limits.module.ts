import { Global, Module } from '@nestjs/common';
import { FailureCountsRepository } from './failure-counts.repository';
import { FailureLimiter } from './failure-limiter.service';

/** The failure limiter shared by HTTP authentication and MQTT logins (Redis-backed). */
@Global()
@Module({ providers: [FailureCountsRepository, FailureLimiter], exports: [FailureLimiter] })
export class LimitsModule {}
