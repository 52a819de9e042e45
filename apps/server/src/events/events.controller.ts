import { Controller, Get, Inject, Query, Req, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import type { Request, Response } from 'express';
import { EventsQuerySchema, UnauthenticatedError, parseWith } from '@ferry/protocol';
import { AccessService } from '../auth/access.service';
import { Public, Requires, RouteAccess } from '../auth/auth.decorators';
import { PrincipalsService } from '../auth/principals.service';
import { Clock } from '../clock/clock';
import { FERRY_CONFIG } from '../config/config.module';
import { FerryConfig } from '../config/config';
import { FleetsService } from '../fleets/fleets.service';
import { EventBus } from './event-bus.service';

/** A client that reads slower than events come is dropped once this much is queued for it. */
const MAX_BUFFERED_BYTES = 8 * 1024 * 1024;

/** Checked here, not by the guard: the route is public to it because EventSource cannot send headers. */
const EVENTS_ACCESS: RouteAccess = { need: 'viewer', scope: 'own-fleets' };

function bearer(request: Request): string | null {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(request.headers.authorization ?? '');
  return match?.[1] ?? null;
}

@ApiTags('events')
@ApiBearerAuth()
@Controller('v1')
export class EventsController {
  constructor(
    private readonly bus: EventBus,
    private readonly principals: PrincipalsService,
    private readonly access: AccessService,
    private readonly fleets: FleetsService,
    private readonly clock: Clock,
    @Inject(FERRY_CONFIG) private readonly config: FerryConfig,
  ) {}

  /**
   * Server-sent events: `device.state`, `device.presence`, `device.target`, … as they happen, from
   * every server process. An operator key as Bearer header, or `?token=` for browsers' EventSource.
   * `?fleet=<id or slug>` keeps one fleet's events. A comment line every few seconds keeps proxies
   * from closing an idle stream.
   */
  @Get('events')
  // Public to the guard because EventSource cannot send headers; the token is checked here.
  @Public()
  @Requires(EVENTS_ACCESS.need, EVENTS_ACCESS.scope)
  async events(@Query() query: unknown, @Req() request: Request, @Res() response: Response): Promise<void> {
    const { fleet, token } = parseWith(EventsQuerySchema, query, 'query');
    const presented = bearer(request) ?? token;
    if (!presented)
      throw new UnauthenticatedError('missing "Authorization: Bearer <token>" header or ?token=');
    const principal = await this.principals.authenticate(presented);
    if (!principal) throw new UnauthenticatedError('invalid token: not a working operator key');
    const fleetId = fleet ? (await this.fleets.get(fleet)).id : null;
    this.access.check(principal, EVENTS_ACCESS, fleetId, 'GET /v1/events');
    // A key limited to some fleets sees only their events.
    const visible = principal.fleetIds;

    response.status(200);
    response.setHeader('Content-Type', 'text/event-stream; charset=utf-8');
    response.setHeader('Cache-Control', 'no-cache, no-transform');
    response.setHeader('Connection', 'keep-alive');
    response.setHeader('X-Accel-Buffering', 'no');
    response.flushHeaders();
    response.write(': ferry events\n\n');

    let sequence = 0;
    const subscription = this.bus.events$.subscribe((event) => {
      if (fleetId && event.fleetId !== fleetId) return;
      if (visible && (event.fleetId === null || !visible.includes(event.fleetId))) return;
      sequence += 1;
      response.write(`id: ${sequence}\nevent: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`);
      if (response.writableLength > MAX_BUFFERED_BYTES) response.destroy();
    });
    const heartbeat = setInterval(
      () => response.write(`: heartbeat ${this.clock.iso()}\n\n`),
      this.config.eventsHeartbeatSeconds * 1000,
    );
    const stop = (): void => {
      clearInterval(heartbeat);
      subscription.unsubscribe();
    };
    response.on('close', stop);
    request.on('close', stop);
  }
}
