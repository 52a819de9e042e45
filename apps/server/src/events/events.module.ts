import { Global, Module } from '@nestjs/common';
import { FleetsModule } from '../fleets/fleets.module';
import { EventBusRepository } from './event-bus.repository';
import { EventBus } from './event-bus.service';
import { EventsController } from './events.controller';

/** The event bus (any feature may publish to it) and its SSE endpoint. */
@Global()
@Module({
  imports: [FleetsModule],
  controllers: [EventsController],
  providers: [EventBusRepository, EventBus],
  exports: [EventBus],
})
export class EventsModule {}
