import { Module } from '@nestjs/common';
import { DevicesModule } from '../devices/devices.module';
import { DeviceStateController } from './device-state.controller';
import { DeviceStateService } from './device-state.service';

/**
 * What devices report (state, presence), from MQTT (the broker hands it over) or `POST
 * /v1/device/state`, coalesced into the devices' rows and out on the event bus.
 */
@Module({
  imports: [DevicesModule],
  controllers: [DeviceStateController],
  providers: [DeviceStateService],
  exports: [DeviceStateService],
})
export class DeviceStateModule {}
