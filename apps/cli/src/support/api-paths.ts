import type { Fleet } from '@ferry/protocol';

import type { FerryClient } from './client';

/** API paths with their one variable part escaped. */
export const fleetPath = (fleet: string): string => `/v1/fleets/${encodeURIComponent(fleet)}`;
export const releasePath = (id: string): string => `/v1/releases/${encodeURIComponent(id)}`;
export const rolloutPath = (id: string): string => `/v1/rollouts/${encodeURIComponent(id)}`;
export const devicePath = (uuid: string): string => `/v1/devices/${encodeURIComponent(uuid)}`;

/** The slug of a fleet known by id, for output people read (the id when it is gone). */
export async function fleetSlug(client: FerryClient, fleetId: string): Promise<string> {
  const fleets = await client.get<Fleet[]>('/v1/fleets');
  return fleets.find((f) => f.id === fleetId)?.slug ?? fleetId;
}
