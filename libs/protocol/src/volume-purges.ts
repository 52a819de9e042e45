import { z } from 'zod';

/**
 * Purging an app volume from a device (docs/compose.md "Volumes"): an operator asks
 * (`POST /v1/devices/{uuid}/volumes/{volume}/purge`), the device learns it with its target and removes
 * the volume `<app>_<volume>` if it is Ferry's and no release it runs declares it, then answers with
 * the outcome (`POST /v1/device/volume-purges/{volume}`).
 */
export const VOLUME_PURGE_STATES = ['pending', 'purged', 'refused'] as const;
export type VolumePurgeState = (typeof VOLUME_PURGE_STATES)[number];

export interface VolumePurge {
  uuid: string;
  /** The volume as the compose file names it. */
  volume: string;
  state: VolumePurgeState;
  requestedAt: string;
  /** The operator (key name) who asked. */
  requestedBy: string;
  /** When the device answered (or the server refused it for a release that declares the volume). */
  doneAt: string | null;
  /** Why a purge was refused. */
  error: string | null;
}

/** Body of `POST /v1/device/volume-purges/{volume}`: what the device did. */
export const VolumePurgeOutcomeSchema = z
  .object({
    outcome: z.enum(['purged', 'refused']),
    error: z.string().max(2000).optional(),
  })
  .strict();
export type VolumePurgeOutcome = z.infer<typeof VolumePurgeOutcomeSchema>;
