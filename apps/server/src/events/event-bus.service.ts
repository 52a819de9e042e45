import { randomUUID } from 'node:crypto';
import { Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { Observable, Subject } from 'rxjs';
import { FerryEvent, FerryEventSchema } from '@ferry/protocol';
import { z } from 'zod';
import { EventBusRepository } from './event-bus.repository';

const EventBatchSchema = z.object({ origin: z.string(), events: z.array(FerryEventSchema) });

/**
 * The in-process event bus behind `GET /v1/events`: any feature publishes {@link FerryEvent}s here.
 * Local subscribers get them at once; other server processes get them through Redis, so an SSE client
 * of any process sees the changes made in every process.
 */
@Injectable()
export class EventBus implements OnModuleInit {
  private readonly logger = new Logger(EventBus.name);
  /** Tells this process's own batches apart when Redis echoes them back. */
  private readonly origin = randomUUID();
  private readonly local = new Subject<FerryEvent>();
  /** Events from every process (this one's first, at once). */
  readonly events$: Observable<FerryEvent> = this.local.asObservable();

  constructor(private readonly repository: EventBusRepository) {}

  async onModuleInit(): Promise<void> {
    await this.repository.subscribe((raw) => this.receive(raw));
  }

  /** Publishes events to every process; delivered locally before this returns. */
  publish(events: FerryEvent[]): void {
    if (events.length === 0) return;
    for (const event of events) this.local.next(event);
    this.repository.publish({ origin: this.origin, events }).catch((error: Error) => {
      // While Redis is away the outage line says so once; not one line per event.
      if (!this.repository.redisAway)
        this.logger.warn(`events not shared with other processes: ${error.message}`);
    });
  }

  private receive(raw: string): void {
    let batch: z.infer<typeof EventBatchSchema>;
    try {
      batch = EventBatchSchema.parse(JSON.parse(raw));
    } catch (error) {
      this.logger.warn(`ignored a malformed event batch: ${(error as Error).message}`);
      return;
    }
    if (batch.origin === this.origin) return;
    for (const event of batch.events) this.local.next(event);
  }
}
