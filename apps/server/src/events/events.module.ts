import { Module } from '@nestjs/common';
import { FleetsModule } from '../fleets/fleets.module';
import { EventBusModule } from './event-bus.module';
import { EventsController } from './events.controller';

/** The event bus and its SSE endpoint, `GET /v1/events`. */
@Module({
  imports: [EventBusModule, FleetsModule],
  controllers: [EventsController],
})
export class EventsModule {}
