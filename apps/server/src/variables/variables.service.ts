import { Injectable, Logger } from '@nestjs/common';
import {
  DeviceVariables,
  FerryEvent,
  MAX_VARIABLES_PER_SCOPE,
  MAX_VARIABLE_VALUE_BYTES,
  NotFoundError,
  PayloadTooLargeError,
  SetVariable,
  Variable,
  VariableList,
  VariableSetting,
  resolveVariables,
  variableLevel,
} from '@ferry/protocol';
import { Clock } from '../clock/clock';
import { DevicesService } from '../devices/devices.service';
import { EventBus } from '../events/event-bus.service';
import { FleetsService } from '../fleets/fleets.service';
import { ReleasesService } from '../releases/releases.service';
import { VariablesNotifier } from './variables-notifier.service';
import { StoredVariable, VariableScope, VariablesRepository } from './variables.repository';

/** A fleet (by id or slug) or a device (by UUID): whose variables an operator reads or changes. */
export type VariableOwner = { fleet: string } | { device: string };

type Setting = VariableSetting & { stored: StoredVariable };

function setting(stored: StoredVariable): Setting {
  return {
    name: stored.name,
    value: stored.value,
    service: stored.service,
    level: variableLevel(stored.deviceUuid !== null, stored.service),
    stored,
  };
}

/** What an operator sees of a variable: never a secret's value. */
function shown(s: Setting): Variable {
  return {
    name: s.name,
    value: s.stored.secret ? null : s.value,
    secret: s.stored.secret,
    service: s.service,
    level: s.level,
    updatedAt: s.stored.updatedAt,
  };
}

/**
 * Configuration variables at four levels (fleet, fleet+service, device, device+service; the most
 * specific wins). Operators list, set and delete them; every change bumps the version of the devices
 * it concerns and tells them over MQTT; a device fetches its own, resolved per service, with
 * {@link forDevice}. Secret values leave the server only to the device.
 */
@Injectable()
export class VariablesService {
  private readonly logger = new Logger(VariablesService.name);

  constructor(
    private readonly variables: VariablesRepository,
    private readonly fleets: FleetsService,
    private readonly devices: DevicesService,
    private readonly releases: ReleasesService,
    private readonly notifier: VariablesNotifier,
    private readonly bus: EventBus,
    private readonly clock: Clock,
  ) {}

  /**
   * A fleet's or a device's variables: every setting of its levels (a device's list includes the
   * fleet's, which it inherits), or with `service` the ones that win for that service.
   */
  async list(owner: VariableOwner, service?: string): Promise<VariableList> {
    const scope = await this.scopeOf(owner, service ?? null);
    if (service !== undefined) await this.checkService(scope.fleetId, service);
    const stored = await this.variables.list(scope.fleetId, scope.deviceUuid);
    const settings = stored.map(setting);
    const chosen = service === undefined ? settings : resolveVariables(settings, service);
    let version: number;
    let reportedVersion: number | null = null;
    if (scope.deviceUuid === null) {
      version = (await this.variables.revisions(scope.fleetId, false)).fleet;
    } else {
      const device = await this.devices.get(scope.deviceUuid);
      ({ version, reportedVersion } = device.variables);
    }
    return {
      fleetId: scope.fleetId,
      uuid: scope.deviceUuid,
      service: service ?? null,
      version,
      reportedVersion,
      variables: chosen.map(shown),
    };
  }

  /** Sets (creates or replaces) a variable and tells the devices it concerns. */
  async set(owner: VariableOwner, input: SetVariable): Promise<{ variable: Variable; created: boolean }> {
    const service = input.service ?? null;
    const scope = await this.scopeOf(owner, service);
    const bytes = Buffer.byteLength(input.value, 'utf8');
    if (bytes > MAX_VARIABLE_VALUE_BYTES)
      throw new PayloadTooLargeError(
        `value of ${input.name} is ${bytes} bytes; at most ${MAX_VARIABLE_VALUE_BYTES} bytes are allowed`,
        { field: 'value', limit: MAX_VARIABLE_VALUE_BYTES },
      );
    if (service !== null) await this.checkService(scope.fleetId, service);
    const result = await this.variables.set(
      scope,
      input.name,
      input.value,
      input.secret,
      this.clock.iso(),
      MAX_VARIABLES_PER_SCOPE,
    );
    if (!result)
      throw new PayloadTooLargeError(
        `${this.describe(scope)} already holds ${MAX_VARIABLES_PER_SCOPE} variables, the most allowed`,
        { limit: MAX_VARIABLES_PER_SCOPE },
      );
    await this.changed(scope, input.name, 'set');
    return { variable: shown(setting(result.variable)), created: result.created };
  }

  /** Deletes a variable (404 when its scope has none of that name) and tells the devices it concerns. */
  async remove(owner: VariableOwner, name: string, service?: string): Promise<void> {
    const scope = await this.scopeOf(owner, service ?? null);
    if (!(await this.variables.remove(scope, name)))
      throw new NotFoundError(`${this.describe(scope)} has no variable ${name}`);
    await this.changed(scope, name, 'removed');
  }

  /** The variables of a device by level (secrets in full: only the device asks this), with their version. */
  async forDevice(uuid: string, fleetId: string): Promise<DeviceVariables> {
    const snapshot = await this.variables.snapshot(fleetId, uuid);
    const answer: DeviceVariables = {
      version: snapshot.fleetRevision + snapshot.deviceRevision,
      fleet: {},
      fleetServices: {},
      device: {},
      deviceServices: {},
    };
    for (const v of snapshot.variables) {
      const device = v.deviceUuid !== null;
      if (v.service === null) (device ? answer.device : answer.fleet)[v.name] = v.value;
      else {
        const byService = device ? answer.deviceServices : answer.fleetServices;
        (byService[v.service] ??= {})[v.name] = v.value;
      }
    }
    return answer;
  }

  private async scopeOf(owner: VariableOwner, service: string | null): Promise<VariableScope> {
    if ('fleet' in owner)
      return { fleetId: (await this.fleets.get(owner.fleet)).id, deviceUuid: null, service };
    const device = await this.devices.get(owner.device);
    return { fleetId: device.fleetId, deviceUuid: device.uuid, service };
  }

  /** A service must be one of the fleet's releases: a typo would otherwise set a variable nothing reads. */
  private async checkService(fleetId: string, service: string): Promise<void> {
    const known = new Set((await this.releases.list(fleetId)).flatMap((r) => r.services.map((s) => s.name)));
    if (!known.has(service))
      throw new NotFoundError(
        `no release of this fleet has a service "${service}"` +
          (known.size > 0 ? ` (its services: ${[...known].sort().join(', ')})` : ' (it has no release yet)'),
        { field: 'service' },
      );
  }

  private describe(scope: VariableScope): string {
    const owner = scope.deviceUuid === null ? 'the fleet' : `device ${scope.deviceUuid}`;
    return scope.service === null ? owner : `${owner} (service ${scope.service})`;
  }

  /** After a change: the devices it concerns get a notice, dashboards an event. */
  private async changed(scope: VariableScope, name: string, change: 'set' | 'removed'): Promise<void> {
    const event: FerryEvent = {
      type: 'variables.changed',
      fleetId: scope.fleetId,
      at: this.clock.iso(),
      data: {
        uuid: scope.deviceUuid,
        service: scope.service,
        name,
        change,
        level: variableLevel(scope.deviceUuid !== null, scope.service),
      },
    };
    this.bus.publish([event]);
    try {
      if (scope.deviceUuid === null) {
        const { fleet, devices } = await this.variables.revisions(scope.fleetId, true);
        await this.notifier.notify(devices.map((d) => ({ uuid: d.uuid, version: fleet + d.revision })));
      } else {
        const device = await this.devices.get(scope.deviceUuid);
        await this.notifier.notify([{ uuid: device.uuid, version: device.variables.version }]);
      }
    } catch (error) {
      // Stored all the same: devices find the new version when they next ask (ETag polling).
      this.logger.warn(`variables notice for ${this.describe(scope)} not sent: ${(error as Error).message}`);
    }
  }
}
