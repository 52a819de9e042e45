import { createHash } from 'node:crypto';
import { z } from 'zod';
import { DigestSchema } from './digest';

/** BullMQ queue names. */
export enum QueueName {
  Deltas = 'deltas',
}

/** Job names within {@link QueueName.Deltas}. The worker refuses to boot if one has no handler (apps/worker/src/deltas/delta-job-handlers.ts). */
export enum DeltaJobName {
  Build = 'build-delta',
}

/**
 * A delta to build: the target layer against an ordered list of base layers (all uncompressed tars,
 * by diffID). The order is the order the decoder will be given the bases in.
 */
export const DeltaJobDataSchema = z
  .object({
    key: z.string().regex(/^[0-9a-f]{64}$/),
    bases: z.array(DigestSchema).min(1).max(64),
    target: DigestSchema,
    /** Size of the target's gzip copy: a delta not smaller than this is not worth sending. */
    targetGzipSize: z.number().int().nonnegative(),
    /**
     * The install (`DATA_DIR/install-id`) whose server queued the job: a worker of another install
     * refuses it, naming both, instead of building into a DATA_DIR that server never reads.
     */
    installId: z
      .string()
      .regex(/^[0-9a-f]{16}$/)
      .optional(),
  })
  .strict();
export type DeltaJobData = z.infer<typeof DeltaJobDataSchema>;

export const DeltaJobResultSchema = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('delta'),
    digest: DigestSchema,
    size: z.number().int().nonnegative(),
    encodeMs: z.number().nonnegative(),
  }),
  z.object({
    /** The delta was not smaller than the gzip'd layer: devices get the full layer. */
    kind: z.literal('full'),
    deltaSize: z.number().int().nonnegative(),
    encodeMs: z.number().nonnegative(),
  }),
]);
export type DeltaJobResult = z.infer<typeof DeltaJobResultSchema>;

/** The identity of a delta: sha256 over the ordered bases and the target. Also its job id. */
export function deltaKey(bases: readonly string[], target: string): string {
  return createHash('sha256')
    .update(`${bases.join(',')}>${target}`)
    .digest('hex');
}

/** Delta states as recorded by the server. */
export const DELTA_STATES = ['queued', 'building', 'ready', 'full', 'failed'] as const;
export type DeltaState = (typeof DELTA_STATES)[number];

export interface DeltaRecord {
  key: string;
  bases: string[];
  target: string;
  state: DeltaState;
  /** Blob digest of the delta when ready. */
  digest: string | null;
  size: number | null;
  targetSize: number;
  targetGzipSize: number;
  /** 1 - size / targetGzipSize, when ready. */
  savings: number | null;
  error: string | null;
  createdAt: string;
  updatedAt: string;
}
