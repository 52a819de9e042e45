import { Body, Controller, Get, Param, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { Requires } from '../auth/auth.decorators';
import { DeltaRecord, ValidationError, parseWith } from '@ferry/protocol';
import { z } from 'zod';
import { ReleasesService } from '../releases/releases.service';
import { DeltasService } from './deltas.service';

const BuildFromSchema = z.object({ from: z.string().min(1).max(64) }).strict();

@ApiTags('deltas')
@ApiBearerAuth()
@Controller('v1')
export class DeltasController {
  constructor(
    private readonly deltas: DeltasService,
    private readonly releases: ReleasesService,
  ) {}

  /** Deltas whose target is a layer of this release: state, size, savings against the gzip'd layer. */
  @Get('releases/:id/deltas')
  @Requires('viewer', { release: 'id' })
  async list(@Param('id') id: string): Promise<DeltaRecord[]> {
    return this.deltas.listForRelease(id);
  }

  /** Builds, on demand, the deltas a device running release `from` needs for this release. */
  @Post('releases/:id/deltas')
  @Requires('deployer', { release: 'id' })
  async build(@Param('id') id: string, @Body() body: unknown): Promise<DeltaRecord[]> {
    const { from } = parseWith(BuildFromSchema, body, 'delta request');
    const [target, base] = await Promise.all([this.releases.get(id), this.releases.get(from)]);
    if (target.fleetId !== base.fleetId)
      throw new ValidationError('both releases must belong to the same fleet');
    return this.deltas.planBetween(base, target);
  }

  @Get('deltas/:key')
  @Requires('viewer', 'all-fleets')
  async get(@Param('key') key: string): Promise<DeltaRecord> {
    return this.deltas.get(key);
  }
}
