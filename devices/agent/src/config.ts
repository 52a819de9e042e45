import { existsSync, readFileSync } from 'node:fs';
import { AgentConfigError } from './errors';
import type { LogLevel } from './log';

/** The agent's whole configuration, validated once at start. */
export interface AgentConfig {
  /** Base URL of the Ferry server (`FERRY_API_URL`). */
  apiUrl: string;
  /** The fleet's provisioning key (`FERRY_PROVISIONING_KEY`); only needed until registered. */
  provisioningKey: string | null;
  /** Where credentials, journal, downloads and rebuilt layers live (`FERRY_DATA_DIR`). @defaultValue `/var/lib/ferry-agent` */
  dataDir: string;
  /** Engine API socket (`FERRY_ENGINE_SOCKET`). @defaultValue balenaEngine's, else Docker's */
  engineSocket: string;
  /** A file the application creates to hold off container swaps (`FERRY_UPDATE_LOCK`). @defaultValue `/tmp/ferry/updates.lock` */
  updateLockPath: string;
  /** Target polling period while MQTT is unreachable (`FERRY_POLL_INTERVAL_MS`). @defaultValue 600000 */
  pollIntervalMs: number;
  /** How long new containers must keep running without a health check (`FERRY_HEALTH_GRACE_MS`). @defaultValue 10000 */
  healthGraceMs: number;
  /** Longest wait for an engine health check to say healthy (`FERRY_HEALTH_TIMEOUT_MS`). @defaultValue 120000 */
  healthTimeoutMs: number;
  /** Seconds an old container gets to stop before the engine kills it (`FERRY_STOP_TIMEOUT_S`). @defaultValue 10 */
  stopTimeoutSeconds: number;
  /** `NetworkMode` of the containers the agent creates (`FERRY_NETWORK_MODE`). @defaultValue `host` */
  networkMode: string;
  /** Overrides the MQTT URL the server handed out at registration (`FERRY_MQTT_URL`). */
  mqttUrl: string | null;
  /** Parallel blob downloads (`FERRY_DOWNLOAD_CONCURRENCY`). @defaultValue 3 */
  downloadConcurrency: number;
  /** First retry delay of a failed download; doubles up to 256 s (`FERRY_RETRY_BASE_MS`). @defaultValue 2000 */
  retryBaseMs: number;
  /** Attempts per blob before a delta falls back to its full layer (`FERRY_DOWNLOAD_ATTEMPTS`). @defaultValue 4 */
  downloadAttempts: number;
  /** Free memory the update needs besides the decoder (`FERRY_MIN_FREE_MEMORY_MB`). @defaultValue 32 */
  minFreeMemoryBytes: number;
  /** Free disk kept back beyond what an update needs (`FERRY_DISK_RESERVE_MB`). @defaultValue 16 */
  diskReserveBytes: number;
  /**
   * Longest wait between two looks at the target while an update waits for a download or maintenance
   * window (`FERRY_WINDOW_RECHECK_MS`). @defaultValue 60000
   */
  windowRecheckMs: number;
  /**
   * How often the services' states are read while the release runs, to report a change (a restart,
   * a health check turning) between reconciliations (`FERRY_SERVICE_REPORT_MS`). @defaultValue 15000
   */
  serviceReportMs: number;
  /** Device name sent at registration (`FERRY_DEVICE_NAME`). */
  deviceName: string | null;
  /** `FERRY_LOG_LEVEL`. @defaultValue `info` */
  logLevel: LogLevel;
}

const KEYS: Record<keyof AgentConfig, string> = {
  apiUrl: 'FERRY_API_URL',
  provisioningKey: 'FERRY_PROVISIONING_KEY',
  dataDir: 'FERRY_DATA_DIR',
  engineSocket: 'FERRY_ENGINE_SOCKET',
  updateLockPath: 'FERRY_UPDATE_LOCK',
  pollIntervalMs: 'FERRY_POLL_INTERVAL_MS',
  healthGraceMs: 'FERRY_HEALTH_GRACE_MS',
  healthTimeoutMs: 'FERRY_HEALTH_TIMEOUT_MS',
  networkMode: 'FERRY_NETWORK_MODE',
  stopTimeoutSeconds: 'FERRY_STOP_TIMEOUT_S',
  mqttUrl: 'FERRY_MQTT_URL',
  downloadConcurrency: 'FERRY_DOWNLOAD_CONCURRENCY',
  retryBaseMs: 'FERRY_RETRY_BASE_MS',
  downloadAttempts: 'FERRY_DOWNLOAD_ATTEMPTS',
  minFreeMemoryBytes: 'FERRY_MIN_FREE_MEMORY_MB',
  diskReserveBytes: 'FERRY_DISK_RESERVE_MB',
  windowRecheckMs: 'FERRY_WINDOW_RECHECK_MS',
  serviceReportMs: 'FERRY_SERVICE_REPORT_MS',
  deviceName: 'FERRY_DEVICE_NAME',
  logLevel: 'FERRY_LOG_LEVEL',
};

export const DEFAULT_ENGINE_SOCKETS = ['/var/run/balena-engine.sock', '/var/run/docker.sock'];

/**
 * Reads the configuration from the environment, or from the JSON file named by `FERRY_AGENT_CONFIG`
 * (keys are the variable names, e.g. `{"FERRY_API_URL": "…"}`); the environment wins over the file.
 * Throws {@link AgentConfigError} naming the variable that is wrong.
 */
export function loadAgentConfig(env: NodeJS.ProcessEnv = process.env): AgentConfig {
  let file: Record<string, unknown> = {};
  if (env.FERRY_AGENT_CONFIG) {
    try {
      file = JSON.parse(readFileSync(env.FERRY_AGENT_CONFIG, 'utf8')) as Record<string, unknown>;
    } catch (error) {
      throw new AgentConfigError(
        `FERRY_AGENT_CONFIG (${env.FERRY_AGENT_CONFIG}): ${(error as Error).message}`,
      );
    }
  }
  const raw = (key: keyof AgentConfig): string | undefined => {
    const name = KEYS[key];
    const value = env[name] ?? file[name];
    if (value === undefined || value === null || value === '') return undefined;
    if (typeof value === 'string') return value;
    if (typeof value === 'number' || typeof value === 'boolean') return `${value}`;
    throw new AgentConfigError(`${name} must be a string or a number`);
  };
  const int = (key: keyof AgentConfig, fallback: number, min: number): number => {
    const value = raw(key);
    if (value === undefined) return fallback;
    const n = Number(value);
    if (!Number.isInteger(n) || n < min)
      throw new AgentConfigError(`${KEYS[key]} must be an integer >= ${min}, got "${value}"`);
    return n;
  };
  const apiUrl = raw('apiUrl');
  if (!apiUrl)
    throw new AgentConfigError(
      'FERRY_API_URL is required (the Ferry server, e.g. https://ferry.example.com)',
    );
  try {
    const url = new URL(apiUrl);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('not http(s)');
  } catch {
    throw new AgentConfigError(`FERRY_API_URL must be an http(s) URL, got "${apiUrl}"`);
  }
  const logLevel = raw('logLevel') ?? 'info';
  if (!['debug', 'info', 'warn', 'error'].includes(logLevel))
    throw new AgentConfigError(`FERRY_LOG_LEVEL must be debug, info, warn or error, got "${logLevel}"`);
  const networkMode = raw('networkMode') ?? 'host';
  if (!/^[A-Za-z0-9_.:-]+$/.test(networkMode))
    throw new AgentConfigError(`FERRY_NETWORK_MODE is not a network mode: "${networkMode}"`);
  return {
    apiUrl: apiUrl.replace(/\/+$/, ''),
    provisioningKey: raw('provisioningKey') ?? null,
    dataDir: raw('dataDir') ?? '/var/lib/ferry-agent',
    engineSocket:
      raw('engineSocket') ?? DEFAULT_ENGINE_SOCKETS.find((s) => existsSync(s)) ?? DEFAULT_ENGINE_SOCKETS[0]!,
    updateLockPath: raw('updateLockPath') ?? '/tmp/ferry/updates.lock',
    pollIntervalMs: int('pollIntervalMs', 600_000, 100),
    healthGraceMs: int('healthGraceMs', 10_000, 0),
    healthTimeoutMs: int('healthTimeoutMs', 120_000, 100),
    networkMode,
    stopTimeoutSeconds: int('stopTimeoutSeconds', 10, 0),
    mqttUrl: raw('mqttUrl') ?? null,
    downloadConcurrency: int('downloadConcurrency', 3, 1),
    retryBaseMs: int('retryBaseMs', 2000, 1),
    downloadAttempts: int('downloadAttempts', 4, 1),
    minFreeMemoryBytes: int('minFreeMemoryBytes', 32, 0) * 1024 * 1024,
    diskReserveBytes: int('diskReserveBytes', 16, 0) * 1024 * 1024,
    windowRecheckMs: int('windowRecheckMs', 60_000, 100),
    serviceReportMs: int('serviceReportMs', 15_000, 100),
    deviceName: raw('deviceName') ?? null,
    logLevel: logLevel as LogLevel,
  };
}
