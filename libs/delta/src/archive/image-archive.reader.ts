import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { extract } from 'tar-stream';
import {
  FerryError,
  PayloadTooLargeError,
  UnusableArchiveError,
  isDigest,
  isDiskFullError,
} from '@ferry/protocol';
import { z } from 'zod';
import { ArchiveLimits } from './archive-limits';
import { SourceClosedError, borrowStream, isZlibError, peekFirstChunk } from './borrowed-stream';
import { byteLimit, expansionGuard, tooLarge } from './byte-limit';
import { WrittenFile, writeHashedFile } from './hashing-file-writer';
import { StagedLayer, stageLayer } from './layer-stager';
import {
  Descriptor,
  DockerArchiveManifestSchema,
  ImageConfig,
  ImageConfigSchema,
  OCI_INDEX_MEDIA_TYPES,
  OciIndexSchema,
  OciManifestSchema,
} from './manifest.schemas';
import { resolveLinkInside, safeMemberName } from './member-name';
import { serviceNameFromReference } from './service-name';
import { settleAll } from './settle-all';

export type ArchiveFormat = 'docker-archive' | 'oci-archive';

/** One image of an archive, its config and layers staged on disk and verified. */
export interface ArchiveImage {
  /** Service name (from the repo tag; `main` for a single untagged image). */
  service: string;
  reference: string | null;
  config: { digest: string; size: number; path: string; json: ImageConfig };
  layers: StagedLayer[];
}

export interface ImageArchive {
  format: ArchiveFormat;
  images: ArchiveImage[];
  /** Bytes received (before any outer decompression). */
  receivedBytes: number;
}

interface Member extends WrittenFile {
  head: Buffer;
}

/** Keeps the head of every member this small in memory, for JSON parsing. */
const SMALL_MEMBER = 4 * 1024 * 1024;

/**
 * Reads a `docker save` / docker-archive or OCI image archive from a stream (optionally gzip'd as a
 * whole), staging its members under `stagingDir` (which must be empty and on the blob store's
 * filesystem), and verifies everything: member names, link targets, digests of configs and layers
 * against their names and the config's diff_ids, declared sizes, and size/ratio limits.
 * Never holds a layer in memory. Throws {@link UnusableArchiveError} or PayloadTooLargeError,
 * RequestTimeoutError when the input stalls past `idleTimeoutMs`, {@link SourceClosedError} when it
 * closes early, or the file system's error (ENOSPC…). `input` is never destroyed: on failure it is
 * left paused, so an HTTP request can still carry the answer.
 */
export async function readImageArchive(
  input: Readable,
  stagingDir: string,
  limits: ArchiveLimits,
  options: { idleTimeoutMs?: number } = {},
): Promise<ImageArchive> {
  await mkdir(stagingDir, { recursive: true });
  const received = byteLimit(limits.maxArchiveBytes, tooLarge(limits.maxArchiveBytes));
  const members = new Map<string, Member>();
  const links = new Map<string, string>();
  const source = borrowStream(input, options);
  await extractMembers(await archiveStages(source, received, limits), stagingDir, limits, members, links);
  resolveLinks(members, links);

  const images = members.has('manifest.json')
    ? await dockerArchiveImages(members, limits)
    : members.has('index.json')
      ? await ociArchiveImages(members, limits)
      : null;
  if (images === null) {
    throw new UnusableArchiveError(
      'missing manifest: the archive has neither manifest.json (docker-archive) nor index.json (OCI archive)',
    );
  }
  const staged = await stageImages(images.list, stagingDir, limits);
  return { format: images.format, images: staged, receivedBytes: received.seen() };
}

/**
 * The stages the archive's bytes flow through before the tar parser: the input (borrowed, never
 * destroyed), the received-bytes cap, and, when the whole archive is gzip'd, a gunzip with a cap on
 * how far it may expand (the same ratio and size limits as for gzip'd layers).
 */
async function archiveStages(
  source: Readable,
  received: Transform & { seen(): number },
  limits: ArchiveLimits,
): Promise<[Readable, ...Transform[]]> {
  const head = await peekFirstChunk(source).catch((error: unknown) => {
    source.destroy();
    throw error;
  });
  if (head === null || head.length < 2 || head[0] !== 0x1f || head[1] !== 0x8b) return [source, received];
  const guard = expansionGuard({
    compressedBytes: () => received.seen(),
    maxRatio: limits.maxCompressionRatio,
    floorBytes: limits.ratioFloorBytes,
    maxBytes: limits.maxUncompressedBytes,
    tooLarge: () =>
      new PayloadTooLargeError(
        `release archive expands past the ${limits.maxUncompressedBytes}-byte limit when decompressed (FERRY_MAX_RELEASE_BYTES)`,
        { limit: limits.maxUncompressedBytes },
      ),
    bomb: () =>
      new UnusableArchiveError(
        `release archive expands more than ${limits.maxCompressionRatio}x when decompressed (suspected gzip bomb, FERRY_MAX_DECOMPRESSION_RATIO)`,
      ),
  });
  return [source, received, createGunzip(), guard];
}

async function extractMembers(
  stages: [Readable, ...Transform[]],
  dir: string,
  limits: ArchiveLimits,
  members: Map<string, Member>,
  links: Map<string, string>,
): Promise<void> {
  const parser = extract();
  let count = 0;
  let current: Readable | undefined;
  const consume = (async () => {
    for await (const entry of parser) {
      current = entry as unknown as Readable;
      const { header } = entry;
      count += 1;
      if (count > limits.maxMembers)
        throw new UnusableArchiveError(`archive has more than ${limits.maxMembers} members`);
      const name = safeMemberName(header.name);
      if (name === null)
        throw new UnusableArchiveError(`unsafe member name in archive: ${JSON.stringify(header.name)}`);
      switch (header.type) {
        case 'file':
        case 'contiguous-file':
        case null:
        case undefined: {
          if (members.has(name) || links.has(name))
            throw new UnusableArchiveError(`duplicate archive member: ${name}`);
          const written = await writeHashedFile(entry as unknown as Readable, join(dir, `member-${count}`), {
            keepBytes: SMALL_MEMBER,
          });
          members.set(name, written);
          break;
        }
        case 'symlink':
        case 'link': {
          const target =
            header.type === 'symlink'
              ? resolveLinkInside(name, header.linkname ?? '')
              : safeMemberName(header.linkname ?? '');
          if (target === null) {
            throw new UnusableArchiveError(
              `archive link escapes the archive: ${name} -> ${JSON.stringify(header.linkname)}`,
            );
          }
          links.set(name, target);
          entry.resume();
          break;
        }
        case 'directory':
          entry.resume();
          break;
        case 'character-device':
        case 'block-device':
        case 'fifo':
          throw new UnusableArchiveError(`unexpected ${header.type} member in archive: ${name}`);
      }
    }
  })();
  const pumped = pipeline([...stages, parser]).catch((error: unknown) => {
    // A truncated archive ends the parser but not the member being read: end both, so the consumer
    // stops and settleAll cannot wait forever.
    current?.destroy(error as Error);
    parser.destroy(error as Error);
    throw error;
  });
  try {
    await settleAll([consume, pumped]);
  } catch (error) {
    if (error instanceof FerryError || isDiskFullError(error) || error instanceof SourceClosedError)
      throw error;
    if (isZlibError(error))
      throw new UnusableArchiveError(`archive is not valid gzip: ${(error as Error).message}`);
    throw new UnusableArchiveError(`archive is not a readable tar: ${(error as Error).message}`);
  }
}

function resolveLinks(members: Map<string, Member>, links: Map<string, string>): void {
  for (const [name, first] of links) {
    let target = first;
    for (let hops = 0; !members.has(target); hops += 1) {
      const next = links.get(target);
      if (next === undefined || hops > 16) {
        throw new UnusableArchiveError(`archive link ${name} points to a missing member ${target}`);
      }
      target = next;
    }
    members.set(name, members.get(target) as Member);
  }
}

/** Parsed JSON members by schema: a config shared by many images is parsed once, not once per image. */
const parsedMembers = new WeakMap<Member, Map<z.ZodType, unknown>>();

/**
 * Parses a small member as JSON and validates it with `schema`, once per member and schema.
 * `precheck` sees the raw value first, to refuse what is too big before validating it.
 */
function parseJson<S extends z.ZodType>(
  member: Member,
  schema: S,
  what: string,
  limit: number,
  precheck?: (value: unknown) => void,
): z.output<S> {
  const cached = parsedMembers.get(member)?.get(schema);
  if (cached !== undefined) return cached as z.output<S>;
  if (member.size > Math.min(limit, SMALL_MEMBER))
    throw new UnusableArchiveError(`${what} is too large to be JSON metadata`);
  let value: unknown;
  try {
    value = JSON.parse(member.head.toString('utf8'));
  } catch {
    throw new UnusableArchiveError(`${what} is not valid JSON`);
  }
  precheck?.(value);
  const result = schema.safeParse(value);
  if (!result.success) {
    const reasons = result.error.issues
      .map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`)
      .join('; ');
    throw new UnusableArchiveError(`${what} is malformed: ${reasons}`);
  }
  const bySchema = parsedMembers.get(member) ?? new Map<z.ZodType, unknown>();
  bySchema.set(schema, result.data);
  parsedMembers.set(member, bySchema);
  return result.data;
}

function tooManyImages(count: number | string, limits: ArchiveLimits): PayloadTooLargeError {
  return new PayloadTooLargeError(
    `archive holds ${count} images; a release takes at most ${limits.maxImages} (FERRY_MAX_IMAGES_PER_RELEASE)`,
    { limit: limits.maxImages },
  );
}

interface ImageRefs {
  reference: string | null;
  configMember: Member;
  configDigest: string;
  layerMembers: { member: Member; label: string }[];
}

function need(members: Map<string, Member>, name: string, what: string): Member {
  const member = safeMemberName(name) === null ? undefined : members.get(safeMemberName(name) as string);
  if (!member) throw new UnusableArchiveError(`${what} ${JSON.stringify(name)} is missing from the archive`);
  return member;
}

async function dockerArchiveImages(
  members: Map<string, Member>,
  limits: ArchiveLimits,
): Promise<{ format: ArchiveFormat; list: ImageRefs[] }> {
  const manifest = parseJson(
    members.get('manifest.json') as Member,
    DockerArchiveManifestSchema,
    'manifest.json',
    SMALL_MEMBER,
    (value) => {
      if (Array.isArray(value) && value.length > limits.maxImages) throw tooManyImages(value.length, limits);
    },
  );
  const list = manifest.map((image, index): ImageRefs => {
    const configMember = need(members, image.Config, 'image config');
    const hex = /([0-9a-f]{64})(?:\.json)?$/.exec(image.Config)?.[1];
    if (hex && `sha256:${hex}` !== configMember.digest) {
      throw new UnusableArchiveError(
        `image config ${image.Config} does not match its digest (got ${configMember.digest})`,
      );
    }
    return {
      reference: image.RepoTags?.[0] ?? null,
      configMember,
      configDigest: configMember.digest,
      layerMembers: image.Layers.map((layer, i) => ({
        member: need(members, layer, 'layer'),
        label: `image ${index + 1} layer ${i + 1} (${layer})`,
      })),
    };
  });
  return Promise.resolve({ format: 'docker-archive', list });
}

function blobMember(members: Map<string, Member>, descriptor: Descriptor, what: string): Member {
  const [algorithm, hex] = descriptor.digest.split(':');
  const member = need(members, `blobs/${algorithm}/${hex}`, what);
  if (member.digest !== descriptor.digest) {
    throw new UnusableArchiveError(
      `${what} ${descriptor.digest} does not match its content (got ${member.digest})`,
    );
  }
  if (member.size !== descriptor.size) {
    throw new UnusableArchiveError(
      `${what} ${descriptor.digest} declares ${descriptor.size} bytes but holds ${member.size}`,
    );
  }
  return member;
}

async function ociArchiveImages(
  members: Map<string, Member>,
  limits: ArchiveLimits,
): Promise<{ format: ArchiveFormat; list: ImageRefs[] }> {
  const layout = members.get('oci-layout');
  if (!layout) throw new UnusableArchiveError('OCI archive has index.json but no oci-layout file');
  parseJson(layout, z.object({ imageLayoutVersion: z.string() }), 'oci-layout', limits.maxJsonBytes);
  const root = parseJson(
    members.get('index.json') as Member,
    OciIndexSchema,
    'index.json',
    limits.maxJsonBytes,
  );
  const manifests: { descriptor: Descriptor; reference: string | null }[] = [];
  const visit = (descriptors: Descriptor[], inherited: string | null, depth: number): void => {
    if (depth > 4) throw new UnusableArchiveError('OCI index nests too deeply');
    for (const descriptor of descriptors) {
      const reference =
        descriptor.annotations?.['io.containerd.image.name'] ??
        descriptor.annotations?.['org.opencontainers.image.ref.name'] ??
        inherited;
      if (descriptor.mediaType && OCI_INDEX_MEDIA_TYPES.has(descriptor.mediaType)) {
        const nested = parseJson(
          blobMember(members, descriptor, 'image index'),
          OciIndexSchema,
          `index ${descriptor.digest}`,
          limits.maxJsonBytes,
        );
        visit(nested.manifests, reference, depth + 1);
      } else {
        manifests.push({ descriptor, reference });
        if (manifests.length > limits.maxImages) throw tooManyImages(`more than ${limits.maxImages}`, limits);
      }
    }
  };
  visit(root.manifests, null, 0);
  if (manifests.length === 0) throw new UnusableArchiveError('index.json lists no image manifest');
  const list = manifests.map(({ descriptor, reference }, index): ImageRefs => {
    const manifest = parseJson(
      blobMember(members, descriptor, 'image manifest'),
      OciManifestSchema,
      `manifest ${descriptor.digest}`,
      limits.maxJsonBytes,
    );
    return {
      reference,
      configMember: blobMember(members, manifest.config, 'image config'),
      configDigest: manifest.config.digest,
      layerMembers: manifest.layers.map((layer, i) => ({
        member: blobMember(members, layer, 'layer'),
        label: `image ${index + 1} layer ${i + 1} (${layer.digest})`,
      })),
    };
  });
  return Promise.resolve({ format: 'oci-archive', list });
}

function serviceNames(refs: ImageRefs[]): string[] {
  const names = refs.map((ref) => serviceNameFromReference(ref.reference));
  if (refs.length === 1) return [names[0] ?? 'main'];
  const missing = names.findIndex((name) => name === null);
  if (missing >= 0) {
    throw new UnusableArchiveError(
      `image ${missing + 1} of ${refs.length} has no repository tag: tag every image (e.g. web:1) to name its service`,
    );
  }
  const seen = new Set<string>();
  for (const name of names as string[]) {
    if (seen.has(name))
      throw new UnusableArchiveError(`two images would both be service "${name}": tag them apart`);
    seen.add(name);
  }
  return names as string[];
}

async function stageImages(refs: ImageRefs[], dir: string, limits: ArchiveLimits): Promise<ArchiveImage[]> {
  const names = serviceNames(refs);
  const byMember = new Map<Member, StagedLayer>();
  let remaining = limits.maxUncompressedBytes;
  let layerId = 0;
  const images: ArchiveImage[] = [];
  for (const [index, ref] of refs.entries()) {
    // Images are few (maxImages) but each may cost a JSON parse: let other requests in between.
    await yieldToEventLoop();
    const json = parseJson(
      ref.configMember,
      ImageConfigSchema,
      `image config ${ref.configDigest}`,
      limits.maxJsonBytes,
    );
    if (!isDigest(ref.configMember.digest))
      throw new UnusableArchiveError('image config digest is malformed');
    const diffIds = json.rootfs.diff_ids;
    if (diffIds.length !== ref.layerMembers.length) {
      throw new UnusableArchiveError(
        `image ${index + 1} lists ${ref.layerMembers.length} layers but its config declares ${diffIds.length} diff_ids`,
      );
    }
    const layers: StagedLayer[] = [];
    for (const [i, { member, label }] of ref.layerMembers.entries()) {
      let layer = byMember.get(member);
      if (!layer) {
        layerId += 1;
        layer = await stageLayer(member, dir, layerId, limits, remaining, label);
        remaining -= layer.size;
        byMember.set(member, layer);
      }
      if (layer.diffId !== diffIds[i]) {
        throw new UnusableArchiveError(
          `${label}: uncompressed sha256 ${layer.diffId} does not match the config's diff_id ${diffIds[i]}`,
        );
      }
      layers.push(layer);
    }
    images.push({
      service: names[index] as string,
      reference: ref.reference,
      config: {
        digest: ref.configMember.digest,
        size: ref.configMember.size,
        path: ref.configMember.path,
        json,
      },
      layers,
    });
  }
  return images;
}
