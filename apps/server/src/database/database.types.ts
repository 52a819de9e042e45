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
}

export interface LayerTable {
  diff_id: string;
  size: number;
  gzip_digest: string;
  gzip_size: number;
  created_at: string;
}

export interface ReleaseLayerTable {
  release_id: string;
  service: string;
  position: number;
  diff_id: string;
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

export interface Database {
  deltas: DeltaTable;
  fleets: FleetTable;
  provisioning_keys: ProvisioningKeyTable;
  devices: DeviceTable;
  releases: ReleaseTable;
  layers: LayerTable;
  release_layers: ReleaseLayerTable;
  rollouts: RolloutTable;
  rollout_batches: RolloutBatchTable;
  rollout_devices: RolloutDeviceTable;
  rollout_samples: RolloutSampleTable;
  fleet_rollout_settings: FleetRolloutSettingsTable;
}
