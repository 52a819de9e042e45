import type { DeviceVariables } from '@ferry/protocol/wire';

/** Throws unless `value` is a map of strings (no zod on the device: it costs ~12 MB of RSS). */
function stringMap(value: unknown, what: string): Record<string, string> {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new Error(`${what} is not a map`);
  for (const [name, text] of Object.entries(value))
    if (typeof text !== 'string') throw new Error(`${what}.${name} is not a string`);
  return value as Record<string, string>;
}

function serviceMaps(value: unknown, what: string): Record<string, Record<string, string>> {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new Error(`${what} is not a map`);
  for (const [service, map] of Object.entries(value)) stringMap(map, `${what}.${service}`);
  return value as Record<string, Record<string, string>>;
}

/**
 * Checks the answer of `GET /v1/device/variables` (docs/variables.md) before the agent journals it: a
 * version and four maps of strings. Throws naming what is wrong.
 */
export function parseDeviceVariables(text: string): DeviceVariables {
  const body = JSON.parse(text) as Record<string, unknown>;
  if (typeof body !== 'object' || body === null) throw new Error('variables: not an object');
  const version = body.version;
  if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 0)
    throw new Error('variables: version is not a whole number');
  return {
    version,
    fleet: stringMap(body.fleet, 'fleet'),
    fleetServices: serviceMaps(body.fleetServices, 'fleetServices'),
    device: stringMap(body.device, 'device'),
    deviceServices: serviceMaps(body.deviceServices, 'deviceServices'),
  };
}

/** The version of a `variables` notice (`{"version": 7, "issuedAt": …}`), or null when it is not one. */
export function variablesNoticeVersion(payload: Buffer): number | null {
  if (payload.length === 0 || payload.length > 4096) return null;
  try {
    const version = (JSON.parse(payload.toString('utf8')) as { version?: unknown } | null)?.version;
    return typeof version === 'number' && Number.isSafeInteger(version) && version >= 0 ? version : null;
  } catch {
    return null;
  }
}
