import { Controller, Get, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import {
  AuditEntry,
  AuditQuerySchema,
  ForbiddenError,
  NotFoundError,
  Principal,
  parseWith,
} from '@ferry/protocol';
import { CurrentPrincipal, Requires } from '../auth/auth.decorators';
import { FleetScopeRepository } from '../auth/fleet-scope.repository';
import { AuditService } from './audit.service';

@ApiTags('audit')
@ApiBearerAuth()
@Controller('v1/audit')
export class AuditController {
  constructor(
    private readonly audit: AuditService,
    private readonly scopes: FleetScopeRepository,
  ) {}

  /**
   * Audit entries oldest first, `?fleet=` one fleet's, `?since=` from a time on, `?actor=` one key's.
   * A key limited to some fleets sees only their entries.
   */
  @Get()
  @Requires('viewer', 'own-fleets')
  async list(@Query() query: unknown, @CurrentPrincipal() principal: Principal): Promise<AuditEntry[]> {
    const { fleet, ...rest } = parseWith(AuditQuerySchema, query, 'query');
    let fleetIds = principal.fleetIds;
    if (fleet !== undefined) {
      const id = await this.scopes.fleetByIdOrSlug(fleet);
      if (!id) throw new NotFoundError(`no fleet ${fleet}`);
      if (fleetIds !== null && !fleetIds.includes(id))
        throw new ForbiddenError(`key ${principal.name} may not read fleet ${fleet}`);
      fleetIds = [id];
    }
    return this.audit.list(rest, fleetIds);
  }
}
