import {
  DeviceStateMessage,
  DeviceStateMessageSchema,
  PresenceMessage,
  PresenceMessageSchema,
} from './messages';

export type PayloadDropReason = 'too_large' | 'malformed_json' | 'invalid_message';

export type ParsedDevicePayload =
  | { ok: true; kind: 'state'; message: DeviceStateMessage }
  | { ok: true; kind: 'presence'; message: PresenceMessage | null }
  | { ok: false; reason: PayloadDropReason };

/**
 * Parses what a device published on its `state` or `presence` topic: size cap first, then JSON, then
 * the shared schema. Never throws: a bad payload comes back as a reason to drop and count it. An empty
 * presence payload (a cleared retained message) parses to `null`.
 */
export function parseDevicePayload(
  kind: 'state' | 'presence',
  payload: Buffer,
  maxBytes: number,
): ParsedDevicePayload {
  if (payload.length > maxBytes) return { ok: false, reason: 'too_large' };
  if (payload.length === 0 && kind === 'presence') return { ok: true, kind, message: null };
  let json: unknown;
  try {
    json = JSON.parse(payload.toString('utf8'));
  } catch {
    return { ok: false, reason: 'malformed_json' };
  }
  if (kind === 'state') {
    const result = DeviceStateMessageSchema.safeParse(json);
    return result.success
      ? { ok: true, kind, message: result.data }
      : { ok: false, reason: 'invalid_message' };
  }
  const result = PresenceMessageSchema.safeParse(json);
  return result.success ? { ok: true, kind, message: result.data } : { ok: false, reason: 'invalid_message' };
}
