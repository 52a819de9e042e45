import { Module } from '@nestjs/common';
import { DeviceStateRepository } from './device-state.repository';
import { DeviceStateService } from './device-state.service';

/** What devices report (state, presence), coalesced into the database and out on the event bus. */
@Module({
  providers: [DeviceStateRepository, DeviceStateService],
  exports: [DeviceStateService],
})
export class DeviceStateModule {}
