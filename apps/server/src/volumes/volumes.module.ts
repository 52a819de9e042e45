import { Module } from '@nestjs/common';
import { BrokerModule } from '../broker/broker.module';
import { DevicesModule } from '../devices/devices.module';
import { ReleasesModule } from '../releases/releases.module';
import { TargetNotifier } from '../targets/target-notifier.service';
import { DeviceVolumePurgesController } from './device-volume-purges.controller';
import { VolumePurgesController } from './volume-purges.controller';
import { VolumePurgesRepository } from './volume-purges.repository';
import { VolumePurgesService } from './volume-purges.service';

/**
 * Purging app volumes from devices (docs/compose.md "Volumes"): the operator's request, what the
 * device's target carries ({@link VolumePurgesService.forTarget}) and the device's answer.
 */
@Module({
  imports: [DevicesModule, ReleasesModule, BrokerModule],
  controllers: [VolumePurgesController, DeviceVolumePurgesController],
  providers: [VolumePurgesRepository, VolumePurgesService, TargetNotifier],
  exports: [VolumePurgesService],
})
export class VolumesModule {}
