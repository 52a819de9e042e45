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
import { FERRY_CONFIG } from '../config/config.module';
import { FerryConfig } from '../config/config';
import { FailureLimiter } from '../common/failure-limiter';
import { FleetsService } from '../fleets/fleets.service';
import { DeviceEvents } from './device-events';
import { DeviceQuery, DeviceRecord, DevicesRepository } from './devices.repository';

export function publicDevice(device: DeviceRecord): Device {
  const { keyHash: _secret, ...rest } = device;
  return rest;
}

@Injectable()
export class DevicesService {
  /** Failed registrations per source address; also used for failed device-key checks. */
  readonly failures: FailureLimiter;

  constructor(
    private readonly devices: DevicesRepository,
    private readonly fleets: FleetsService,
    private readonly events: DeviceEvents,
    @Inject(FERRY_CONFIG) private readonly config: FerryConfig,
  ) {
    this.failures = new FailureLimiter(config.limits.registrationFailuresPerMinute);
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
    this.failures.check(source, 'registration');
    const fleet = await this.fleets.fleetOfProvisioningKey(input.provisioningKey);
    if (!fleet) {
      this.failures.fail(source);
      throw new UnauthenticatedError('unknown or revoked provisioning key');
    }
    const uuid = input.uuid ?? randomBytes(16).toString('hex');
    const apiKey = input.apiKey ?? newSecret();
    const answer: RegisteredDevice = {
      uuid,
      apiKey,
      fleet: { id: fleet.id, slug: fleet.slug, arch: fleet.arch, signingPublicKey: fleet.signingPublicKey },
      mqtt: { url: this.mqttUrl(), username: uuid, topicPrefix: devicePrefix(uuid) },
    };
    const existing = await this.devices.find(uuid);
    if (existing) {
      if (existing.fleetId === fleet.id && secretMatches(apiKey, existing.keyHash))
        return { created: false, device: answer };
      this.failures.fail(source);
      throw new ConflictError(`device ${uuid} is already registered with another key`);
    }
    const keyHash = hashSecret(apiKey);
    if (await this.devices.findByKeyHash(keyHash)) {
      this.failures.fail(source);
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
        createdAt: new Date().toISOString(),
        report: null,
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
