import type { ReleaseTrust } from './release-signing';
import type { ServiceState } from './messages';
import { z } from 'zod';
import { Architecture } from './fleet';

/** Device UUIDs are 32 lowercase hex characters (as balena's) or an RFC 4122 UUID. */
export const DeviceUuidSchema = z
  .string()
  .regex(
    /^(?:[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/,
    'must be 32 hex characters or a UUID',
  );

/** Device API keys carry at least 32 random bytes: 43+ base64url characters (or 64+ hex). */
export const DeviceApiKeySchema = z
  .string()
  .min(43, 'must carry at least 32 random bytes')
  .max(256)
  .regex(/^[A-Za-z0-9_-]+$/, 'base64url or hex characters only');

export const RegisterDeviceSchema = z
  .object({
    provisioningKey: z.string().min(1).max(256),
    uuid: DeviceUuidSchema.optional(),
    apiKey: DeviceApiKeySchema.optional(),
    name: z.string().trim().min(1).max(100).optional(),
    deviceType: z.string().max(64).optional(),
    agentVersion: z.string().max(64).optional(),
  })
  .strict();
export type RegisterDevice = z.infer<typeof RegisterDeviceSchema>;

export interface MqttConnectionInfo {
  /** `mqtt://host:port` (or `mqtts://`, `ws://`) the device connects to. */
  url: string;
  username: string;
  /** Topic prefix for this device: `ferry/v1/devices/{uuid}`. */
  topicPrefix: string;
}

export interface RegisteredDevice {
  uuid: string;
  apiKey: string;
  fleet: {
    id: string;
    slug: string;
    arch: Architecture;
    signingPublicKey: string;
    /** The fleet's root of trust for releases, which the agent pins (null: the server signs). */
    releaseTrust: ReleaseTrust | null;
  };
  mqtt: MqttConnectionInfo;
  /**
   * The server's online public key (PEM) that signs this device's targets, which the agent pins
   * (docs/security.md "Signed targets"); it follows rotations through the targets themselves.
   */
  targetKey: string;
}

export const TagsSchema = z.record(
  z
    .string()
    .min(1)
    .max(64)
    .regex(/^[A-Za-z0-9_.:-]+$/, 'tag names: letters, digits, _ . : -'),
  z.string().max(256),
);

export const TagDeviceSchema = z
  .object({
    /** Tags to set; a tag set to null is removed. */
    tags: z.record(z.string(), z.string().max(256).nullable()),
  })
  .strict();

export interface Device {
  uuid: string;
  fleetId: string;
  name: string;
  deviceType: string | null;
  agentVersion: string | null;
  online: boolean;
  lastSeenAt: string | null;
  status: string;
  releaseId: string | null;
  targetReleaseId: string | null;
  tags: Record<string, string>;
  createdAt: string;
  /** The last update state the device reported over MQTT (`status` holds its status), or null. */
  report: DeviceReport | null;
  /**
   * Its configuration variables: `version` is the one it should run now, `reportedVersion` the one it
   * last reported running (null before its first report of one).
   */
  variables: { version: number; reportedVersion: number | null };
  /** Per service of its app (docs/compose.md), from the last report that carried them; null before. */
  services: ServiceState[] | null;
}

/** The details of a device's last state report. */
export interface DeviceReport {
  /** The release the report is about (being downloaded, installed, or running). */
  releaseId: string | null;
  bytesDone: number | null;
  bytesTotal: number | null;
  error: string | null;
  /** When the server received the report. */
  at: string;
}
