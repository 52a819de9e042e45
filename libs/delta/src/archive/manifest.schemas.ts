import { DigestSchema } from '@ferry/protocol';
import { z } from 'zod';

/** `manifest.json` of a `docker save` / `skopeo copy docker-archive:` archive. */
export const DockerArchiveManifestSchema = z
  .array(
    z.object({
      Config: z.string().min(1),
      RepoTags: z.array(z.string()).nullish(),
      Layers: z.array(z.string().min(1)),
    }),
  )
  .min(1, 'manifest.json lists no image');

const DescriptorSchema = z.object({
  mediaType: z.string().optional(),
  digest: DigestSchema,
  size: z.number().int().nonnegative(),
  annotations: z.record(z.string(), z.string()).optional(),
  platform: z.object({ architecture: z.string().optional(), os: z.string().optional() }).optional(),
});
export type Descriptor = z.infer<typeof DescriptorSchema>;

/** OCI image index (`index.json`, or a nested index blob). */
export const OciIndexSchema = z.object({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  manifests: z.array(DescriptorSchema),
});

/** OCI image manifest blob. */
export const OciManifestSchema = z.object({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  config: DescriptorSchema,
  layers: z.array(DescriptorSchema),
});

/** The part of an image config Ferry relies on. */
export const ImageConfigSchema = z.object({
  architecture: z.string().optional(),
  os: z.string().optional(),
  rootfs: z.object({
    type: z.literal('layers'),
    diff_ids: z.array(DigestSchema),
  }),
});
export type ImageConfig = z.infer<typeof ImageConfigSchema>;

export const OCI_INDEX_MEDIA_TYPES = new Set([
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
]);
