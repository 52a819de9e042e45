import { Generated } from 'kysely';

/**
 * The database schema as Kysely sees it. Timestamps are ISO-8601 strings and booleans 0/1 integers,
 * so the same queries run unchanged on SQLite and PostgreSQL.
 */
export interface FleetTable {
  id: string;
  name: string;
  slug: string;
  arch: string;
  signing_public_key: string;
  signing_private_key: string;
  created_at: string;
  /** Since 0007: grows with every change of the fleet's variables (fleet and fleet+service levels). */
  variables_revision: Generated<number>;
  /** Since 0010: the pinned release keys, JSON `{version, keys, threshold}`; null: server-signed. */
  release_trust: Generated<string | null>;
}

export interface ProvisioningKeyTable {
  id: string;
  fleet_id: string;
  name: string | null;
  key_hash: string;
  prefix: string;
  created_at: string;
  revoked_at: string | null;
}

export interface DeviceTable {
  uuid: string;
  fleet_id: string;
  name: string;
  key_hash: string;
  device_type: string | null;
  agent_version: string | null;
  online: number;
  last_seen_at: string | null;
  status: string;
  release_id: string | null;
  target_release_id: string | null;
  tags: string;
  created_at: string;
  /** Since 0002: the release the device's update is working on, its progress, last error. */
  update_release_id: Generated<string | null>;
  bytes_done: Generated<number | null>;
  bytes_total: Generated<number | null>;
  last_error: Generated<string | null>;
  state_at: Generated<string | null>;
  /** Since 0007: grows with every change of the device's own variables; the version it reports running. */
  variables_revision: Generated<number>;
  variables_version: Generated<number | null>;
  /** JSON array of ServiceState, from the last report that carried it. */
  services: Generated<string | null>;
  /** Since 0012: grows with every change of the target; the signed target carries it. */
  target_version: Generated<number>;
  /** Since 0012: 1 when the target is a rollback the operator (or a rollout) asked for. */
  target_rollback: Generated<number>;
  /** Since 0013: JSON object of the app metrics from the last report that carried them. */
  metrics: Generated<string | null>;
  /** Since 0018: grows by one with every report written (a rollout step's cheap "anything new?"). */
  report_count: Generated<number>;
}

/** Since 0012: the server's online keys that sign device targets; the highest `seq` is the current one. */
export interface TargetKeyTable {
  seq: number;
  key_id: string;
  public_key: string;
  private_key: string;
  created_at: string;
}

export interface ReleaseTable {
  id: string;
  fleet_id: string;
  version: number;
  note: string | null;
  total_size: number;
  manifest: string;
  signature: string;
  created_at: string;
  /** Since 0010: the release owners' signatures, a JSON list; null for a server-signed fleet. */
  owner_signatures: Generated<string | null>;
}

export interface LayerTable {
  diff_id: string;
  size: number;
  gzip_digest: string;
  gzip_size: number;
  created_at: string;
}

/** Since 0006: every blob (config, layer, gzip copy) a release's manifest names, for download checks. */
export interface ReleaseBlobTable {
  release_id: string;
  fleet_id: string;
  digest: string;
}

export interface DeltaTable {
  key: string;
  bases: string;
  target_diff_id: string;
  state: string;
  digest: string | null;
  size: number | null;
  target_size: number;
  target_gzip_size: number;
  encode_ms: number | null;
  error: string | null;
  created_at: string;
  updated_at: string;
}

/** Since 0004: rollouts, their batches, devices, count samples, and fleets' rollout settings. */
export interface RolloutTable {
  id: string;
  fleet_id: string;
  release_id: string;
  state: string;
  reason: string | null;
  trigger: string;
  strategy: string;
  tag_filter: string | null;
  current_batch: number;
  projected_bytes: number;
  full_bytes: number;
  created_at: string;
  updated_at: string;
  finished_at: string | null;
}

export interface RolloutBatchTable {
  rollout_id: string;
  number: number;
  state: string;
  size: number;
  started_at: string | null;
  bake_until: string | null;
  finished_at: string | null;
  /** Since 0013: JSON HealthVerdict given when the bake ended. */
  health: Generated<string | null>;
}

/** Since 0013: one row per report or presence change that counted against a device's health. */
export interface DeviceHealthEventTable {
  device_uuid: string;
  at: string;
  /** A HealthKind: `restarts`, `healthChecks`, `offline`, `errors` or `metric:{name}`. */
  kind: string;
  count: number;
}

export interface RolloutDeviceTable {
  rollout_id: string;
  device_uuid: string;
  name: string;
  batch: number;
  state: string;
  from_release_id: string | null;
  projected_bytes: number;
  full_bytes: number;
  bytes_sent: number;
  reason: string | null;
  notified_at: string | null;
  deadline: string | null;
  notice_sent: number;
  notice_release_id: string | null;
  /** Since 0019: how many times the device was told again, having stayed silent after its notice. */
  notice_tries: Generated<number>;
  /** Since 0019: when to tell it again if it is still silent; null: not again. */
  notice_due_at: string | null;
  updated_at: string;
}

export interface RolloutSampleTable {
  rollout_id: string;
  at: string;
  counts: string;
}

export interface FleetRolloutSettingsTable {
  fleet_id: string;
  track_latest: number;
  default_strategy: string;
  updated_at: string;
}

/** Since 0007: configuration variables; `device_uuid` and `service` null where the level has none. */
export interface VariableTable {
  id: string;
  fleet_id: string;
  device_uuid: string | null;
  service: string | null;
  name: string;
  value: string;
  secret: number;
  created_at: string;
  updated_at: string;
}

export interface FleetBindMountTable {
  fleet_id: string;
  path: string;
}

/** Since 0009: operator API keys (docs/security.md), stored hashed; `fleet_ids` a JSON array or null. */
export interface ApiKeyTable {
  id: string;
  name: string;
  role: string;
  fleet_ids: string | null;
  key_hash: string;
  prefix: string;
  created_at: string;
  created_by: string;
  expires_at: string | null;
  revoked_at: string | null;
  last_used_at: string | null;
}

/** Since 0009: server-wide settings by name (`bootstrap_token` = `disabled`). */
export interface ServerSettingTable {
  name: string;
  value: string;
}

/** Since 0009: the append-only audit log; `targets` a JSON object of the ids acted on. */
export interface AuditEventTable {
  id: string;
  at: string;
  actor: string;
  actor_key_id: string | null;
  action: string;
  method: string;
  path: string;
  fleet_id: string | null;
  targets: string;
  source: string;
  status: number;
  outcome: string;
  error: string | null;
}

/** Since 0010: every version of a fleet's release keys, with the previous keys' signatures of it. */
export interface ReleaseTrustVersionTable {
  fleet_id: string;
  version: number;
  trust: string;
  signatures: string;
  created_at: string;
}

/** Since 0015: volumes operators asked to purge from devices, `pending`, `purged` or `refused`. */
export interface VolumePurgeTable {
  device_uuid: string;
  volume: string;
  state: string;
  requested_at: string;
  requested_by: string;
  done_at: string | null;
  error: string | null;
}

export interface UpdatePolicyTable {
  fleet_id: string;
  scope: 'fleet' | 'tag' | 'device';
  scope_key: string;
  maintenance_windows: string | null;
  download_windows: string | null;
  /** bigint: PostgreSQL hands it back as a string. */
  download_rate: number | string | null;
  updated_at: string;
}

export interface Database {
  update_policies: UpdatePolicyTable;
  target_keys: TargetKeyTable;
  volume_purges: VolumePurgeTable;
  release_trust_versions: ReleaseTrustVersionTable;
  api_keys: ApiKeyTable;
  server_settings: ServerSettingTable;
  audit_events: AuditEventTable;
  variables: VariableTable;
  deltas: DeltaTable;
  release_blobs: ReleaseBlobTable;
  fleets: FleetTable;
  provisioning_keys: ProvisioningKeyTable;
  devices: DeviceTable;
  releases: ReleaseTable;
  layers: LayerTable;
  rollouts: RolloutTable;
  rollout_batches: RolloutBatchTable;
  device_health_events: DeviceHealthEventTable;
  rollout_devices: RolloutDeviceTable;
  rollout_samples: RolloutSampleTable;
  fleet_rollout_settings: FleetRolloutSettingsTable;
  fleet_bind_mounts: FleetBindMountTable;
}
