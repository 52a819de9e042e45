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

export interface Database {
  fleets: FleetTable;
  provisioning_keys: ProvisioningKeyTable;
  devices: DeviceTable;
  releases: ReleaseTable;
  layers: LayerTable;
  release_layers: ReleaseLayerTable;
}
