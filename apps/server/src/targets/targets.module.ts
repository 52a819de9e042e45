import { Module } from '@nestjs/common';
import { BrokerModule } from '../broker/broker.module';
import { DevicesModule } from '../devices/devices.module';
import { ReleasesModule } from '../releases/releases.module';
import { TargetsController } from './targets.controller';
import { TargetsRepository } from './targets.repository';
import { TargetsService } from './targets.service';

/** Devices' target releases: set by operators (and later rollouts), pushed to devices over MQTT. */
@Module({
  imports: [DevicesModule, ReleasesModule, BrokerModule],
  controllers: [TargetsController],
  providers: [TargetsRepository, TargetsService],
  exports: [TargetsService, TargetsRepository],
})
export class TargetsModule {}
