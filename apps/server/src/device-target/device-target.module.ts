import { Module } from '@nestjs/common';
import { DeltasModule } from '../deltas/deltas.module';
import { DevicesModule } from '../devices/devices.module';
import { ReleasesModule } from '../releases/releases.module';
import { DeviceTargetController } from './device-target.controller';
import { DeviceTargetService } from './device-target.service';

@Module({
  imports: [DevicesModule, ReleasesModule, DeltasModule],
  controllers: [DeviceTargetController],
  providers: [DeviceTargetService],
  exports: [DeviceTargetService],
})
export class DeviceTargetModule {}
