import { DynamicModule, Module } from '@nestjs/common';
import { AuditModule } from './audit/audit.module';
import { AuthModule } from './auth/auth.module';
import { BlobsModule } from './blobs/blobs.module';
import { BrokerModule } from './broker/broker.module';
import { ClockModule } from './clock/clock.module';
import { FerryConfig } from './config/config';
import { ConfigModule } from './config/config.module';
import { DashboardModule } from './dashboard/dashboard.module';
import { DatabaseModule } from './database/database.module';
import { DeltasModule } from './deltas/deltas.module';
import { DeviceStateModule } from './device-state/device-state.module';
import { DevicesModule } from './devices/devices.module';
import { EventsModule } from './events/events.module';
import { FleetsModule } from './fleets/fleets.module';
import { HealthModule } from './health/health.module';
import { LimitsModule } from './limits/limits.module';
import { RedisModule } from './redis/redis.module';
import { RolloutSettingsModule } from './rollout-settings/rollout-settings.module';
import { UpdatePoliciesModule } from './update-policies/update-policies.module';
import { RolloutsModule } from './rollouts/rollouts.module';
import { ReleasesModule } from './releases/releases.module';
import { TargetKeysModule } from './target-keys/target-keys.module';
import { TargetsModule } from './targets/targets.module';
import { VariablesModule } from './variables/variables.module';

@Module({})
export class AppModule {
  static forRoot(config: FerryConfig): DynamicModule {
    return {
      module: AppModule,
      imports: [
        ConfigModule.forRoot(config),
        ClockModule,
        DatabaseModule,
        RedisModule,
        LimitsModule,
        BlobsModule,
        AuditModule,
        AuthModule,
        FleetsModule,
        TargetKeysModule,
        DevicesModule,
        ReleasesModule,
        DeltasModule,
        EventsModule,
        BrokerModule,
        DeviceStateModule,
        TargetsModule,
        VariablesModule,
        RolloutsModule,
        RolloutSettingsModule,
        UpdatePoliciesModule,
        DashboardModule,
        HealthModule,
      ],
    };
  }
}
