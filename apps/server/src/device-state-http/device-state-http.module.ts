import { Module } from '@nestjs/common';
import { DeviceStateModule } from '../device-state/device-state.module';
import { DeviceStateHttpController } from './device-state-http.controller';

/** The HTTP fallback for device state reports. */
@Module({
  imports: [DeviceStateModule],
  controllers: [DeviceStateHttpController],
})
export class DeviceStateHttpModule {}
