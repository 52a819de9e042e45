import { Module } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import { FERRY_CONFIG } from '../config/config.module';
import { FerryConfig } from '../config/config';
import { DeviceStateModule } from '../device-state/device-state.module';
import { DevicesModule } from '../devices/devices.module';
import { BrokerController } from './broker.controller';
import { BrokerService } from './broker.service';
import { DeviceNotifier } from './device-notifier.service';
import { EmbeddedMqttRepository } from './embedded-mqtt.repository';
import { ExternalMqttRepository } from './external-mqtt.repository';
import { MqttRepository } from './mqtt.repository';

/**
 * MQTT push channel: the embedded Aedes broker (or a client of an external one with `MQTT_URL`), its
 * access rules, and the notifier that tells devices their target changed.
 */
@Module({
  imports: [DevicesModule, DeviceStateModule],
  controllers: [BrokerController],
  providers: [
    {
      provide: MqttRepository,
      inject: [FERRY_CONFIG, HttpAdapterHost],
      useFactory: (config: FerryConfig, host: HttpAdapterHost): MqttRepository =>
        config.mqtt.externalUrl
          ? new ExternalMqttRepository(config)
          : new EmbeddedMqttRepository(
              config,
              () => (host.httpAdapter?.getHttpServer() as import('node:http').Server | undefined) ?? null,
            ),
    },
    BrokerService,
    DeviceNotifier,
  ],
  exports: [BrokerService, DeviceNotifier],
})
export class BrokerModule {}
