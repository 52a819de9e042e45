import { deviceVariablesProblem, type DeviceVariables } from '@ferry/protocol/wire';

/**
 * Checks the answer of `GET /v1/device/variables` (docs/variables.md) before the agent journals it: a
 * version and four maps of strings. Throws naming what is wrong.
 */
export function parseDeviceVariables(text: string): DeviceVariables {
  const body = JSON.parse(text) as unknown;
  const problem = deviceVariablesProblem(body);
  if (problem) throw new Error(`variables: ${problem}`);
  const { version, fleet, fleetServices, device, deviceServices } = body as DeviceVariables;
  return { version, fleet, fleetServices, device, deviceServices };
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
