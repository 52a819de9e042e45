import { Module } from '@nestjs/common';
import { BrokerModule } from '../broker/broker.module';
import { DeltasModule } from '../deltas/deltas.module';
import { DevicesModule } from '../devices/devices.module';
import { FleetsModule } from '../fleets/fleets.module';
import { ReleasesModule } from '../releases/releases.module';
import { TargetKeysModule } from '../target-keys/target-keys.module';
import { VariablesModule } from '../variables/variables.module';
import { UpdatePoliciesModule } from '../update-policies/update-policies.module';
import { VolumesModule } from '../volumes/volumes.module';
import { DeviceTargetController } from './device-target.controller';
import { DeviceTargetService } from './device-target.service';
import { TargetNotifier } from './target-notifier.service';
import { TargetsController } from './targets.controller';
import { TargetsService } from './targets.service';

/**
 * Devices' target releases: operators' changes (`PUT /v1/devices/:uuid/target`) and rollouts' (through
 * {@link TargetsService}), the notices that push them over MQTT, and the device's own view of its
 * target (`GET /v1/device/target`) with the cheapest download of each layer it lacks.
 */
@Module({
  imports: [
    DevicesModule,
    FleetsModule,
    ReleasesModule,
    DeltasModule,
    BrokerModule,
    TargetKeysModule,
    VolumesModule,
    VariablesModule,
    UpdatePoliciesModule,
  ],
  controllers: [TargetsController, DeviceTargetController],
  providers: [TargetNotifier, TargetsService, DeviceTargetService],
  exports: [TargetsService],
})
export class TargetsModule {}
