import { z } from 'zod';
import { DeviceUuidSchema } from './device';
import { DEVICE_STATUSES, FERRY_EVENT_TYPES, type FerryEventType } from './states';

/** Largest MQTT payload a device may publish on its own topics; larger ones are dropped unread. */
export const MAX_DEVICE_PAYLOAD_BYTES = 16 * 1024;

export const DeviceStatusSchema = z.enum(DEVICE_STATUSES);

const Id = z.string().min(1).max(64);
const Timestamp = z.iso.datetime({ offset: true });
const ByteCount = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

const ServiceStateSchema = z
  .object({
    name: z.string().min(1).max(63),
    /** The engine's container state: running, exited, restarting, created, paused, dead. */
    state: z.enum(['running', 'exited', 'restarting', 'created', 'paused', 'dead', 'removing']),
    exitCode: z.number().int().optional(),
    health: z.enum(['starting', 'healthy', 'unhealthy']).optional(),
    image: z.string().max(80),
    restartCount: z.number().int().min(0),
    containerId: z.string().max(64).optional(),
  })
  .strict();

/** Name of an app metric: lower-case letters, digits and `_`, starting with a letter. */
export const APP_METRIC_NAME = /^[a-z][a-z0-9_]{0,31}$/;
/** Most app metrics one report may carry. */
export const MAX_APP_METRICS = 16;

/**
 * App metrics (docs/protocol.md): counters of bad things the device's apps count (`watchdog_resets`,
 * `brownouts`), each the total since the app started. The server counts their increases.
 */
export const AppMetricsSchema = z
  .record(z.string().regex(APP_METRIC_NAME, 'a metric name such as "watchdog_resets"'), ByteCount)
  .refine((m) => Object.keys(m).length <= MAX_APP_METRICS, `at most ${MAX_APP_METRICS} metrics`);
export type AppMetrics = z.infer<typeof AppMetricsSchema>;

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
    /** The version of the configuration variables its services run with (`GET /v1/device/variables`). */
    variablesVersion: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
    /** Per service of the running app (docs/compose.md): state, health, image, restarts. */
    services: z.array(ServiceStateSchema).max(32).optional(),
    /** App metrics: counters since the app started (see {@link AppMetricsSchema}). */
    metrics: AppMetricsSchema.optional(),
  })
  .strict()
  .refine((m) => m.bytesDone === undefined || m.bytesTotal === undefined || m.bytesDone <= m.bytesTotal, {
    message: 'bytesDone must not exceed bytesTotal',
    path: ['bytesDone'],
  });
export type DeviceStateMessage = z.infer<typeof DeviceStateMessageSchema>;
export type ServiceState = z.infer<typeof ServiceStateSchema>;

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
export const SetTargetSchema = z
  .object({
    releaseId: Id,
    /**
     * The release is older than one the device ran, on purpose: without it the agent refuses a release
     * older than the newest it has run (docs/security.md "Signed targets").
     */
    rollback: z.boolean().optional(),
  })
  .strict();
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
