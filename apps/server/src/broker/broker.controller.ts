import { Controller, Get } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { Requires } from '../auth/auth.decorators';
import { DeviceStateService, DeviceStateStats } from '../device-state/device-state.service';
import { BrokerService, BrokerStats } from './broker.service';

@ApiTags('mqtt')
@ApiBearerAuth()
@Controller('v1/mqtt')
export class BrokerController {
  constructor(
    private readonly broker: BrokerService,
    private readonly state: DeviceStateService,
  ) {}

  /** Broker counters: connections, accepted and dropped device messages (by reason), state writes. */
  @Get('stats')
  @Requires('viewer', 'all-fleets')
  stats(): BrokerStats & { state: DeviceStateStats } {
    return { ...this.broker.stats(), state: this.state.stats() };
  }
}
