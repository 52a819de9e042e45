import { randomBytes } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import {
  ConflictError,
  Device,
  NotFoundError,
  RegisterDevice,
  RegisteredDevice,
  UnauthenticatedError,
  devicePrefix,
} from '@ferry/protocol';
import { hashSecret, newSecret, secretMatches } from '../auth/secrets';
import { Clock } from '../clock/clock';
import { FERRY_CONFIG } from '../config/config.module';
import { FerryConfig } from '../config/config';
import { FailureLimit, FailureLimiter } from '../limits/failure-limiter.service';
import { FleetsService } from '../fleets/fleets.service';
import { TargetKeysService } from '../target-keys/target-keys.service';
import { DeviceEvents } from './device-events';
import { DeviceReportsRepository, DeviceStateWrite } from './device-reports.repository';
import { DeviceQuery, DeviceRecord, DeviceTargetRecord, DevicesRepository } from './devices.repository';

export function publicDevice(device: DeviceRecord): Device {
  const { keyHash: _secret, ...rest } = device;
  return rest;
}

@Injectable()
export class DevicesService {
  constructor(
    private readonly devices: DevicesRepository,
    private readonly reports: DeviceReportsRepository,
    private readonly fleets: FleetsService,
    private readonly targetKeys: TargetKeysService,
    private readonly events: DeviceEvents,
    private readonly clock: Clock,
    private readonly failures: FailureLimiter,
    @Inject(FERRY_CONFIG) private readonly config: FerryConfig,
  ) {}

  /**
   * The limit on failed registrations and device-key checks: per source address (a device key or a
   * provisioning key names no identity that could be counted apart).
   */
  private limits(source: string): FailureLimit[] {
    return [
      { scope: 'device-http', key: source, perMinute: this.config.limits.registrationFailuresPerMinute },
    ];
  }

  /** Throws a RateLimitedError when `source` failed too often to register or authenticate. */
  async checkFailures(source: string, what: string): Promise<void> {
    await this.failures.check(this.limits(source), what);
  }

  async countFailure(source: string): Promise<void> {
    await this.failures.fail(this.limits(source));
  }

  /**
   * Registers a device with a fleet's provisioning key (balena's flow): the device may bring its own
   * UUID and key. Repeating a registration with the same UUID and key is answered as the first one
   * was; the same UUID with another key is a conflict.
   */
  async register(
    input: RegisterDevice,
    source: string,
  ): Promise<{ created: boolean; device: RegisteredDevice }> {
    await this.checkFailures(source, 'registration');
    const fleet = await this.fleets.fleetOfProvisioningKey(input.provisioningKey);
    if (!fleet) {
      await this.countFailure(source);
      throw new UnauthenticatedError('unknown or revoked provisioning key');
    }
    const uuid = input.uuid ?? randomBytes(16).toString('hex');
    const apiKey = input.apiKey ?? newSecret();
    const answer: RegisteredDevice = {
      uuid,
      apiKey,
      fleet: {
        id: fleet.id,
        slug: fleet.slug,
        arch: fleet.arch,
        signingPublicKey: fleet.signingPublicKey,
        releaseTrust: fleet.releaseTrust,
      },
      mqtt: { url: this.mqttUrl(), username: uuid, topicPrefix: devicePrefix(uuid) },
      targetKey: await this.targetKeys.currentPublicKey(),
    };
    const existing = await this.devices.find(uuid);
    if (existing) {
      if (existing.fleetId === fleet.id && secretMatches(apiKey, existing.keyHash))
        return { created: false, device: answer };
      await this.countFailure(source);
      throw new ConflictError(`device ${uuid} is already registered with another key`);
    }
    const keyHash = hashSecret(apiKey);
    if (await this.devices.findByKeyHash(keyHash)) {
      await this.countFailure(source);
      throw new ConflictError('this API key is already in use by another device');
    }
    try {
      await this.devices.insert({
        uuid,
        fleetId: fleet.id,
        name: input.name ?? `device-${uuid.slice(0, 7)}`,
        keyHash,
        deviceType: input.deviceType ?? null,
        agentVersion: input.agentVersion ?? null,
        online: false,
        lastSeenAt: null,
        status: 'registered',
        releaseId: null,
        targetReleaseId: null,
        tags: {},
        createdAt: this.clock.iso(),
        report: null,
        variables: { version: 0, reportedVersion: null },
        services: null,
      });
    } catch (error) {
      // Two concurrent registrations of one UUID: the loser sees the winner's row.
      const winner = await this.devices.find(uuid);
      if (winner && winner.fleetId === fleet.id && secretMatches(apiKey, winner.keyHash))
        return { created: false, device: answer };
      if (winner) throw new ConflictError(`device ${uuid} is already registered with another key`);
      throw error;
    }
    return { created: true, device: answer };
  }

  /** The device holding this API key, or null. */
  async authenticate(apiKey: string): Promise<DeviceRecord | null> {
    const device = await this.devices.findByKeyHash(hashSecret(apiKey));
    return device && secretMatches(apiKey, device.keyHash) ? device : null;
  }

  async list(query: DeviceQuery): Promise<Device[]> {
    return (await this.devices.list(query)).map(publicDevice);
  }

  async listInFleet(fleet: string, query: Omit<DeviceQuery, 'fleetId'>): Promise<Device[]> {
    const { id } = await this.fleets.get(fleet);
    return this.list({ ...query, fleetId: id });
  }

  async get(uuid: string): Promise<DeviceRecord> {
    const device = await this.devices.find(uuid);
    if (!device) throw new NotFoundError(`no device ${uuid}`);
    return device;
  }

  async tag(uuid: string, changes: Record<string, string | null>): Promise<Device> {
    const device = await this.get(uuid);
    const tags = { ...device.tags };
    for (const [name, value] of Object.entries(changes)) {
      if (value === null) delete tags[name];
      else tags[name] = value;
    }
    await this.devices.setTags(uuid, tags);
    return publicDevice({ ...device, tags });
  }

  /**
   * Stores the target release of these devices (telling them is the targets feature's job); `rollback`
   * marks an older release the operator or a rollout asked for.
   */
  async setTargets(uuids: string[], releaseId: string, rollback = false): Promise<void> {
    await this.devices.setTargets(uuids, releaseId, rollback);
  }

  /** A device's target release, version and rollback mark; 404 for an unknown device. */
  async target(uuid: string): Promise<DeviceTargetRecord> {
    const target = await this.devices.target(uuid);
    if (!target) throw new NotFoundError(`no device ${uuid}`);
    return target;
  }

  /** The fleet of each of these devices that exists (unknown UUIDs are left out). */
  async fleetsOf(uuids: string[]): Promise<Map<string, string>> {
    return this.reports.fleetsOf(uuids);
  }

  /** Writes coalesced device reports; returns the number of device rows written. */
  async writeReports(writes: DeviceStateWrite[]): Promise<number> {
    return this.reports.write(writes);
  }

  /** Deletes a device: its key stops working at once and its MQTT session is dropped. */
  async deprovision(uuid: string): Promise<void> {
    const device = await this.get(uuid);
    await this.devices.delete(uuid);
    this.events.deprovisioned$.next({ uuid, fleetId: device.fleetId });
  }

  private mqttUrl(): string {
    if (this.config.mqtt.externalUrl) return this.config.mqtt.externalUrl;
    const host = new URL(this.config.http.publicUrl).hostname;
    return `mqtt://${host}:${this.config.mqtt.port}`;
  }
}
