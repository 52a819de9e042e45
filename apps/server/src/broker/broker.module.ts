import { Module } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import { FERRY_CONFIG } from '../config/config.module';
import { FerryConfig } from '../config/config';
import { RedisOutageMonitor } from '@ferry/storage';
import { REDIS_MONITOR } from '../redis/redis.module';
import { DeviceStateModule } from '../device-state/device-state.module';
import { DevicesModule } from '../devices/devices.module';
import { BrokerController } from './broker.controller';
import { BrokerService } from './broker.service';
import { EmbeddedMqttRepository } from './embedded-mqtt.repository';
import { ExternalMqttRepository } from './external-mqtt.repository';
import { MqttRepository } from './mqtt.repository';

/**
 * MQTT push channel: the embedded Aedes broker (or a client of an external one with `MQTT_URL`) and
 * its access rules. What is published over it (target notices) belongs to the features that publish.
 */
@Module({
  imports: [DevicesModule, DeviceStateModule],
  controllers: [BrokerController],
  providers: [
    {
      provide: MqttRepository,
      inject: [FERRY_CONFIG, HttpAdapterHost, REDIS_MONITOR],
      useFactory: (
        config: FerryConfig,
        host: HttpAdapterHost,
        monitor: RedisOutageMonitor,
      ): MqttRepository =>
        config.mqtt.externalUrl
          ? new ExternalMqttRepository(config)
          : new EmbeddedMqttRepository(
              config,
              () => (host.httpAdapter?.getHttpServer() as import('node:http').Server | undefined) ?? null,
              monitor,
            ),
    },
    BrokerService,
  ],
  exports: [BrokerService, MqttRepository],
})
export class BrokerModule {}
