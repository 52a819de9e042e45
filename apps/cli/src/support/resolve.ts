import type { Fleet, Release, RolloutView } from '@ferry/protocol';

import type { FerryClient } from './client';
import { fleetPath } from './api-paths';
import { InputError } from './errors';

/** Shortest id start taken as a prefix (kubectl and git take any unique start; 4 avoids accidents). */
const MIN_PREFIX = 4;
const FULL_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The one item whose id starts with `given`; an error naming the matches when there are several. */
function uniqueByPrefix<T extends { id: string }>(
  items: T[],
  given: string,
  what: string,
  describe: (item: T) => string,
): T | undefined {
  const matches = items.filter((item) => item.id.startsWith(given.toLowerCase()));
  if (matches.length > 1) {
    throw new InputError(
      `${given} is the start of ${matches.length} ${what} ids (${matches.slice(0, 5).map(describe).join(', ')}): give more characters`,
    );
  }
  return matches[0];
}

/**
 * A release reference: `v3` / `3` (needs the fleet), a full id, or a unique start of an id (4+
 * characters; within the fleet when one is given, else over every fleet). Returns the release id.
 */
export async function resolveRelease(client: FerryClient, given: string, fleet?: string): Promise<string> {
  const version = /^v?(\d+)$/i.exec(given)?.[1];
  if (version !== undefined && fleet) {
    const releases = await client.get<Release[]>(`${fleetPath(fleet)}/releases`);
    const found = releases.find((r) => r.version === Number(version));
    if (!found) throw new InputError(`fleet ${fleet} has no release v${version} (ferry releases ${fleet})`);
    return found.id;
  }
  if (/^v\d+$/i.test(given))
    throw new InputError(`${given} is a version: name the fleet too (ferry deltas FLEET ${given})`);
  if (FULL_ID.test(given) || given.length < MIN_PREFIX) return given;
  const fleets = fleet
    ? [await client.get<Fleet>(fleetPath(fleet))]
    : await client.get<Fleet[]>('/v1/fleets');
  const releases = (
    await Promise.all(
      fleets.map(async (f) =>
        (await client.get<Release[]>(`${fleetPath(f.id)}/releases`)).map((r) => ({ ...r, slug: f.slug })),
      ),
    )
  ).flat();
  return uniqueByPrefix(releases, given, 'release', (r) => `${r.slug} v${r.version}`)?.id ?? given;
}

/** A rollout id, or a unique start of one (4+ characters) over every fleet's rollouts. */
export async function resolveRollout(client: FerryClient, given: string): Promise<string> {
  if (FULL_ID.test(given) || given.length < MIN_PREFIX) return given;
  const fleets = await client.get<Fleet[]>('/v1/fleets');
  const rollouts = (
    await Promise.all(
      fleets.map(async (f) =>
        (await client.get<RolloutView[]>(`${fleetPath(f.id)}/rollouts`, { limit: 500 })).map((r) => ({
          ...r,
          slug: f.slug,
        })),
      ),
    )
  ).flat();
  return uniqueByPrefix(rollouts, given, 'rollout', (r) => `${r.slug} v${r.releaseVersion}`)?.id ?? given;
}
