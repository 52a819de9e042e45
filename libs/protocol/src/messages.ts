import { z } from 'zod';
import { DeviceUuidSchema } from './device';

/** Largest MQTT payload a device may publish on its own topics; larger ones are dropped unread. */
export const MAX_DEVICE_PAYLOAD_BYTES = 16 * 1024;

/**
 * What a device reports about its update, in the order an update goes through (balena's
 * `update_status` and hawkBit's action states, merged): `registered` before any report, `idle` with
 * nothing to do, then download → install → start → `running`; or `failed`, `rolled_back`, or
 * `deferred` (an update lock or a download window holds it back).
 */
export const DEVICE_STATUSES = [
  'registered',
  'idle',
  'downloading',
  'downloaded',
  'installing',
  'starting',
  'running',
  'failed',
  'rolled_back',
  'deferred',
] as const;
export const DeviceStatusSchema = z.enum(DEVICE_STATUSES);
export type DeviceStatus = z.infer<typeof DeviceStatusSchema>;

const Id = z.string().min(1).max(64);
const Timestamp = z.iso.datetime({ offset: true });
const ByteCount = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

/** Device → server on `ferry/v1/devices/{uuid}/state` (QoS 1, not retained). */
export const DeviceStateMessageSchema = z
  .object({
    status: DeviceStatusSchema,
    /** The release this report is about: the one being downloaded/installed, or the one running. */
    releaseId: Id.nullable().optional(),
    bytesDone: ByteCount.optional(),
    bytesTotal: ByteCount.optional(),
    /** Why an update failed, was rolled back or deferred. */
    error: z.string().max(2000).optional(),
    /** The device's clock when it made the report. */
    timestamp: Timestamp.optional(),
  })
  .strict()
  .refine((m) => m.bytesDone === undefined || m.bytesTotal === undefined || m.bytesDone <= m.bytesTotal, {
    message: 'bytesDone must not exceed bytesTotal',
    path: ['bytesDone'],
  });
export type DeviceStateMessage = z.infer<typeof DeviceStateMessageSchema>;

/** Retained on `ferry/v1/devices/{uuid}/presence`: by the device (its last will says offline) or the server. */
export const PresenceMessageSchema = z
  .object({
    status: z.enum(['online', 'offline']),
    timestamp: Timestamp.optional(),
  })
  .strict();
export type PresenceMessage = z.infer<typeof PresenceMessageSchema>;

/**
 * Server → device on `ferry/v1/devices/{uuid}/target` (retained, QoS 1): the release the device should
 * run. Carries the signed manifest so a device can start downloading layers (`/v1/blobs/{digest}`)
 * without another request; it verifies `signature` with its fleet's public key before trusting it.
 */
export const TargetNoticeSchema = z
  .object({
    releaseId: Id,
    version: z.number().int().positive(),
    fleetId: Id,
    issuedAt: Timestamp,
    /** Where the device fetches what it needs: `{publicUrl}/v1/blobs/{digest}` for layers. */
    blobsUrl: z.string().url(),
    /** The release manifest, as signed (see ReleaseManifest). */
    manifest: z.record(z.string(), z.unknown()).optional(),
    /** base64 ed25519 signature of the canonical JSON of `manifest`. */
    signature: z.string().optional(),
  })
  .strict();
export type TargetNotice = z.infer<typeof TargetNoticeSchema>;

/** Body of `PUT /v1/devices/{uuid}/target`. */
export const SetTargetSchema = z.object({ releaseId: Id }).strict();
export type SetTarget = z.infer<typeof SetTargetSchema>;

/** Query of `GET /v1/events`. */
export const EventsQuerySchema = z
  .object({
    /** Only events of this fleet (id or slug). */
    fleet: z.string().min(1).max(63).optional(),
    /** The admin token, for browsers' EventSource which cannot send headers. */
    token: z.string().max(512).optional(),
  })
  .strict();

/** Server-sent event types of `GET /v1/events`. Other features add theirs here. */
export const FERRY_EVENT_TYPES = [
  'device.state',
  'device.presence',
  'device.target',
  'device.deprovisioned',
  'rollout.updated',
] as const;
export type FerryEventType = (typeof FERRY_EVENT_TYPES)[number];

/** One event on the event bus and the SSE stream. `fleetId` lets subscribers filter by fleet. */
export interface FerryEvent {
  type: FerryEventType;
  fleetId: string | null;
  /** When the server saw the change (ISO 8601). */
  at: string;
  data: Record<string, unknown>;
}

export const FerryEventSchema = z.object({
  type: z.enum(FERRY_EVENT_TYPES),
  fleetId: z.string().nullable(),
  at: z.string(),
  data: z.record(z.string(), z.unknown()),
});

/** Checks that a string is a device UUID (MQTT usernames are). */
export function isDeviceUuid(value: string): boolean {
  return DeviceUuidSchema.safeParse(value).success;
}
