import { Module } from '@nestjs/common';
import { FleetsModule } from '../fleets/fleets.module';
import { DeviceApiController } from './device-api.controller';
import { DeviceEvents } from './device-events';
import { DevicesController } from './devices.controller';
import { DevicesRepository } from './devices.repository';
import { DevicesService } from './devices.service';

@Module({
  imports: [FleetsModule],
  controllers: [DevicesController, DeviceApiController],
  providers: [DevicesRepository, DevicesService, DeviceEvents],
  exports: [DevicesService, DevicesRepository, DeviceEvents],
})
export class DevicesModule {}
