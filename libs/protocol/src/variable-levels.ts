// Zod-free on purpose: the device agent and the dashboard bundle this through `@ferry/protocol/wire`.

/**
 * The four levels a configuration variable can be set at, least specific first. The most specific
 * level that sets a name wins (balena's precedence): device+service over device over fleet+service
 * over fleet.
 */
export const VARIABLE_LEVELS = ['fleet', 'fleet+service', 'device', 'device+service'] as const;
export type VariableLevel = (typeof VARIABLE_LEVELS)[number];

/** Longest variable name (characters) and value (bytes of UTF-8) Ferry stores. */
export const MAX_VARIABLE_NAME_LENGTH = 128;
export const MAX_VARIABLE_VALUE_BYTES = 8192;
/** Most variables one scope (a fleet, a fleet's service, a device, a device's service) may hold. */
export const MAX_VARIABLES_PER_SCOPE = 500;
/** Names Ferry keeps for what the agent itself may give containers. */
export const RESERVED_VARIABLE_PREFIX = 'FERRY_';

/** One variable as stored at one level. */
export interface VariableSetting {
  name: string;
  value: string;
  /** The service it applies to, or null for every service. */
  service: string | null;
  level: VariableLevel;
}

/** The level a setting of this scope has. */
export function variableLevel(device: boolean, service: string | null): VariableLevel {
  if (device) return service === null ? 'device' : 'device+service';
  return service === null ? 'fleet' : 'fleet+service';
}

/**
 * The settings that apply to `service` (null: to a service named at no level), the winner of each
 * name: the most specific level. Settings of other services are ignored. The result is sorted by name.
 */
export function resolveVariables<T extends Omit<VariableSetting, 'value'>>(
  settings: readonly T[],
  service: string | null,
): T[] {
  const winners = new Map<string, T>();
  for (const setting of settings) {
    if (setting.service !== null && setting.service !== service) continue;
    const held = winners.get(setting.name);
    if (!held || VARIABLE_LEVELS.indexOf(setting.level) > VARIABLE_LEVELS.indexOf(held.level))
      winners.set(setting.name, setting);
  }
  return [...winners.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/**
 * Server → device on `ferry/v1/devices/{uuid}/variables` (retained, QoS 1): the device's variables
 * changed. It carries no value (secrets stay out of the broker's retained store): the device fetches
 * `GET /v1/device/variables` when `version` differs from the one it runs.
 */
export interface VariablesNotice {
  version: number;
  issuedAt: string;
}

function stringMapProblem(value: unknown, what: string): string | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return `${what} is not a map`;
  for (const [name, text] of Object.entries(value))
    if (typeof text !== 'string') return `${what}.${name} is not a string`;
  return null;
}

/**
 * What is wrong with a device's variables document (a version and four maps of strings, the
 * service levels by service name), or null: checked without zod, by the agent and the target check.
 */
export function deviceVariablesProblem(value: unknown): string | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'not an object';
  const body = value as Record<string, unknown>;
  const version = body.version;
  if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 0)
    return 'version is not a whole number';
  for (const level of ['fleet', 'device'] as const) {
    const problem = stringMapProblem(body[level], level);
    if (problem) return problem;
  }
  for (const level of ['fleetServices', 'deviceServices'] as const) {
    const maps = body[level];
    if (typeof maps !== 'object' || maps === null || Array.isArray(maps)) return `${level} is not a map`;
    for (const [service, map] of Object.entries(maps)) {
      const problem = stringMapProblem(map, `${level}.${service}`);
      if (problem) return problem;
    }
  }
  return null;
}
