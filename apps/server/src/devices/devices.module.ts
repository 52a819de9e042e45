import { Module } from '@nestjs/common';
import { FleetsModule } from '../fleets/fleets.module';
import { TargetKeysModule } from '../target-keys/target-keys.module';
import { DeviceApiController } from './device-api.controller';
import { DeviceEvents } from './device-events';
import { DeviceReportsRepository } from './device-reports.repository';
import { DevicesController } from './devices.controller';
import { DevicesRepository } from './devices.repository';
import { DevicesService } from './devices.service';
import { HealthEventsPrunerService } from './health-events-pruner.service';

@Module({
  imports: [FleetsModule, TargetKeysModule],
  controllers: [DevicesController, DeviceApiController],
  providers: [
    DevicesRepository,
    DeviceReportsRepository,
    DevicesService,
    DeviceEvents,
    HealthEventsPrunerService,
  ],
  exports: [DevicesService, DevicesRepository, DeviceEvents],
})
export class DevicesModule {}
