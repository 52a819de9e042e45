import { Global, Module } from '@nestjs/common';
import { EventBusRepository } from './event-bus.repository';
import { EventBus } from './event-bus.service';

/** The event bus any feature may publish to (the SSE endpoint is EventsModule's). */
@Global()
@Module({
  providers: [EventBusRepository, EventBus],
  exports: [EventBus],
})
export class EventBusModule {}
