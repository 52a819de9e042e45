import { DynamicModule, Module } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { LoggerModule } from 'nestjs-pino';
import { AuthModule } from './auth/auth.module';
import { BlobsModule } from './blobs/blobs.module';
import { BrokerModule } from './broker/broker.module';
import { FerryConfig } from './config/config';
import { ConfigModule } from './config/config.module';
import { DashboardModule } from './dashboard/dashboard.module';
import { DatabaseModule } from './database/database.module';
import { DeltasModule } from './deltas/deltas.module';
import { DeviceTargetModule } from './device-target/device-target.module';
import { DeviceStateHttpModule } from './device-state-http/device-state-http.module';
import { DevicesModule } from './devices/devices.module';
import { EventsModule } from './events/events.module';
import { FleetsModule } from './fleets/fleets.module';
import { HealthModule } from './health/health.module';
import { RedisModule } from './redis/redis.module';
import { RolloutsModule } from './rollouts/rollouts.module';
import { ReleasesModule } from './releases/releases.module';
import { TargetsModule } from './targets/targets.module';

/** pino-pretty is a development dependency: production images log JSON. */
function prettyAvailable(): boolean {
  try {
    require.resolve('pino-pretty');
    return true;
  } catch {
    return false;
  }
}

@Module({})
export class AppModule {
  static forRoot(config: FerryConfig): DynamicModule {
    return {
      module: AppModule,
      imports: [
        ConfigModule.forRoot(config),
        LoggerModule.forRoot({
          pinoHttp: {
            level: config.logLevel,
            ...(config.logFormat === 'pretty' && prettyAvailable()
              ? {
                  transport: {
                    target: 'pino-pretty',
                    options: { singleLine: true, ignore: 'pid,hostname,req,res' },
                  },
                }
              : {}),
            genReqId: (request, response) => {
              const given = request.headers['x-request-id'];
              const id = typeof given === 'string' && /^[\w.-]{1,64}$/.test(given) ? given : randomUUID();
              response.setHeader('X-Request-Id', id);
              return id;
            },
            // GET /v1/events takes the admin token as ?token= (browsers' EventSource cannot send headers).
            redact: ['req.headers.authorization', 'req.query.token'],
            serializers: {
              req: (req: { url?: string }) => ({
                ...req,
                url: req.url?.replace(/([?&]token=)[^&]*/g, '$1[Redacted]'),
              }),
            },
            autoLogging: { ignore: (request) => request.url === '/healthz' || request.url === '/readyz' },
          },
        }),
        DatabaseModule,
        RedisModule,
        BlobsModule,
        AuthModule,
        FleetsModule,
        DevicesModule,
        ReleasesModule,
        DeltasModule,
        DeviceTargetModule,
        EventsModule,
        BrokerModule,
        DeviceStateHttpModule,
        TargetsModule,
        RolloutsModule,
        DashboardModule,
        HealthModule,
      ],
    };
  }
}
