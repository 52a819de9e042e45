import { CORE_SCHEMA, load, mergeTag } from 'js-yaml';

/** YAML 1.2 core schema plus merge keys (`<<: *anchor`), as Docker Compose reads compose files. */
const COMPOSE_YAML = CORE_SCHEMA.withTags(mergeTag);
import {
  ComposeApp,
  InvalidComposeError,
  ReleaseService,
  parseCompose,
  type AppConfig,
} from '@ferry/protocol';
import type { ArchiveImage } from './image-archive.reader';

/** `web`, `docker.io/library/web:latest` and `web:latest` are the same image name. */
export function normalizeReference(reference: string): string {
  let ref = reference.trim();
  if (/^sha256:[0-9a-f]{64}$/.test(ref)) return ref;
  ref = ref.replace(/^docker\.io\//, '').replace(/^library\//, '');
  const at = ref.indexOf('@');
  const name = at >= 0 ? ref.slice(0, at) : ref;
  const lastSlash = name.lastIndexOf('/');
  if (at < 0 && name.lastIndexOf(':') <= lastSlash) ref = `${ref}:latest`;
  return ref;
}

/** Parses a compose file's YAML (JSON is YAML too); a syntax error is a 422 with its line. */
export function loadComposeYaml(text: Buffer): unknown {
  try {
    return load(text.toString('utf8'), { filename: 'compose file', schema: COMPOSE_YAML });
  } catch (error) {
    throw new InvalidComposeError(
      `compose file is not valid YAML: ${(error as Error).message.split('\n')[0]}`,
    );
  }
}

/**
 * The services of a compose release: each compose service with the image its `image:` names in the
 * archives (by repo tag or config digest). Refuses a service whose image is missing and an image no
 * service uses, naming them.
 */
export function composeReleaseServices(
  compose: ComposeApp,
  images: ArchiveImage[],
): { services: ReleaseService[]; app: AppConfig } {
  const byRef = new Map<string, ArchiveImage>();
  for (const image of images) {
    byRef.set(image.config.digest, image);
    if (image.reference) byRef.set(normalizeReference(image.reference), image);
  }
  const used = new Set<string>();
  const problems: string[] = [];
  const services: ReleaseService[] = [];
  for (const service of compose.services) {
    const image = byRef.get(normalizeReference(service.image));
    if (!image) {
      problems.push(
        `services.${service.name}.image: no image "${service.image}" in the pushed archives (they hold ${
          images.map((i) => i.reference ?? i.config.digest).join(', ') || 'none'
        })`,
      );
      continue;
    }
    used.add(image.config.digest);
    services.push({
      name: service.name,
      image: service.image,
      configDigest: image.config.digest,
      layers: image.layers.map((layer) => ({
        diffId: layer.diffId,
        size: layer.size,
        gzipDigest: layer.gzipDigest,
        gzipSize: layer.gzipSize,
      })),
      config: service.config,
    });
  }
  for (const image of images)
    if (!used.has(image.config.digest))
      problems.push(
        `image ${image.reference ?? image.config.digest} is in the archives but no service uses it`,
      );
  if (problems.length > 0)
    throw new InvalidComposeError(`compose file refused: ${problems.join('; ')}`, { issues: problems });
  return { services, app: compose.app };
}

export function parseComposeRelease(
  text: Buffer,
  images: ArchiveImage[],
  allowedBindMounts: readonly string[],
): { services: ReleaseService[]; app: AppConfig } {
  return composeReleaseServices(parseCompose(loadComposeYaml(text), { allowedBindMounts }), images);
}

/**
 * The services and app of a release pushed as `images` (each image once, by config digest) and an
 * optional compose file: what the server puts in the manifest, and what `ferry push --sign` expects to
 * find there before signing. Without a compose file, one service per image with engine defaults.
 */
export function releaseServicesOf(
  images: ArchiveImage[],
  compose: Buffer | null,
  allowedBindMounts: readonly string[],
): { services: ReleaseService[]; app: AppConfig } {
  if (compose) return parseComposeRelease(compose, images, allowedBindMounts);
  return {
    services: images.map((image) => ({
      name: image.service,
      image: image.reference,
      configDigest: image.config.digest,
      config: {},
      layers: image.layers.map((layer) => ({
        diffId: layer.diffId,
        size: layer.size,
        gzipDigest: layer.gzipDigest,
        gzipSize: layer.gzipSize,
      })),
    })),
    app: { volumes: {}, networks: {} },
  };
}
