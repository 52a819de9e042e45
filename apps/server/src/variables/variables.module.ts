import { Module } from '@nestjs/common';
import { BrokerModule } from '../broker/broker.module';
import { DevicesModule } from '../devices/devices.module';
import { FleetsModule } from '../fleets/fleets.module';
import { ReleasesModule } from '../releases/releases.module';
import { DeviceVariablesController } from './device-variables.controller';
import { VariablesController } from './variables.controller';
import { VariablesNotifier } from './variables-notifier.service';
import { VariablesRepository } from './variables.repository';
import { VariablesService } from './variables.service';

/**
 * Configuration variables at fleet, fleet+service, device and device+service level: the operator API,
 * the device's own view (`GET /v1/device/variables`) and the MQTT notices that tell devices a change.
 */
@Module({
  imports: [FleetsModule, DevicesModule, ReleasesModule, BrokerModule],
  controllers: [VariablesController, DeviceVariablesController],
  providers: [VariablesRepository, VariablesService, VariablesNotifier],
  exports: [VariablesService],
})
export class VariablesModule {}
