import { z } from 'zod';
import { DeviceUuidSchema } from './device';
import { parseMaintenanceWindow } from './maintenance-window';

/** Longest list of windows one entry holds. */
export const MAX_POLICY_WINDOWS = 16;
/** Highest rate cap accepted (bytes per second): 10 GB/s, far above any link a cap is for. */
export const MAX_DOWNLOAD_RATE = 10_000_000_000;

/** A tag level: `name=value`, as devices are tagged. */
const TagLevelSchema = z
  .string()
  .max(321)
  .regex(/^[^=\s][^=]{0,63}=.{0,256}$/, 'a tag as name=value');

const WindowListSchema = z
  .array(
    z.string().superRefine((text, ctx) => {
      try {
        parseMaintenanceWindow(text);
      } catch (error) {
        ctx.addIssue({ code: 'custom', message: (error as Error).message });
      }
    }),
  )
  .max(MAX_POLICY_WINDOWS);

/**
 * Body of `PUT /v1/fleets/{fleet}/update-policy`: the settings of one level (the fleet, `tag`
 * `name=value`, or one `device`), replacing what that level had; a field left out is not set there
 * (the broader level's applies). Windows are weekly (`Mon-Fri 02:00-04:00 Europe/Berlin`); an empty
 * list means "any time" and overrides a broader level; `downloadRate` is bytes per second (0: no cap).
 */
export const UpdatePolicyInputSchema = z
  .object({
    tag: TagLevelSchema.optional(),
    device: DeviceUuidSchema.optional(),
    maintenanceWindows: WindowListSchema.nullable().optional(),
    downloadWindows: WindowListSchema.nullable().optional(),
    downloadRate: z.number().int().min(0).max(MAX_DOWNLOAD_RATE).nullable().optional(),
  })
  .strict()
  .refine((input) => !(input.tag !== undefined && input.device !== undefined), {
    message: 'an entry is for a tag or for a device, not both',
    path: ['device'],
  });
export type UpdatePolicyInput = z.infer<typeof UpdatePolicyInputSchema>;

/** Query of `DELETE /v1/fleets/{fleet}/update-policy`: which level to clear (neither: the fleet's). */
export const UpdatePolicyLevelSchema = z
  .object({
    tag: TagLevelSchema.optional(),
    device: DeviceUuidSchema.optional(),
  })
  .strict();
