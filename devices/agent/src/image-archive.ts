import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import { pack } from 'tar-stream';
import type { ReleaseService } from '@ferry/protocol/wire';
import { AgentError } from './errors';
import type { EngineClient } from './engine';

/** The engine holds the image, but not as the manifest says. */
export class ImageMismatchError extends AgentError {
  constructor(message: string) {
    super(message, 'IMAGE_MISMATCH');
  }
}

/** The tag the agent gives a service's image: `ferry-{service}:v{version}`. */
export function imageTag(service: string, version: number): string {
  return `ferry-${service.toLowerCase().replace(/[^a-z0-9_.-]/g, '-')}:v${version}`;
}

/** Docker's chain IDs of every prefix of a layer stack (image-spec "ChainID"). */
export function chainIds(diffIds: string[]): string[] {
  const out: string[] = [];
  for (const diffId of diffIds) {
    const prev = out[out.length - 1];
    out.push(
      prev === undefined
        ? diffId
        : `sha256:${createHash('sha256').update(`${prev} ${diffId}`).digest('hex')}`,
    );
  }
  return out;
}

/** Chain IDs of every layer stack the engine holds. */
export async function heldChains(engine: EngineClient): Promise<Set<string>> {
  const held = new Set<string>();
  for (const { Id } of await engine.images()) {
    const image = await engine.image(Id);
    for (const chain of chainIds(image?.RootFS?.Layers ?? [])) held.add(chain);
  }
  return held;
}

/**
 * The layers of `service` the engine needs bytes for: docker's loader skips a layer whose chain it
 * already holds without opening its file, so only layers after the longest held prefix are sent.
 */
export function layersNeedingBytes(service: ReleaseService, chains: Set<string>): string[] {
  const ids = chainIds(service.layers.map((l) => l.diffId));
  let prefix = 0;
  while (prefix < ids.length && chains.has(ids[prefix]!)) prefix++;
  return service.layers.slice(prefix).map((l) => l.diffId);
}

/**
 * Loads one service image into the engine as a docker-archive stream: config, the layer tars the
 * engine lacks (`fileOf`), and a manifest.json listing every layer. Checks the engine's image
 * afterwards: ID equals the config digest and its layers equal the manifest's diffIDs.
 */
export async function loadServiceImage(
  engine: EngineClient,
  service: ReleaseService,
  tag: string,
  configFile: string,
  needed: string[],
  fileOf: (diffId: string) => string,
): Promise<void> {
  const hex = (d: string): string => d.replace(/^sha256:/, '');
  const archive = pack();
  const loading = engine.loadImage(archive as unknown as Readable);
  const write = async (): Promise<void> => {
    const config = await readFile(configFile);
    archive.entry({ name: `${hex(service.configDigest)}.json`, size: config.length }, config);
    for (const diffId of needed) {
      const file = fileOf(diffId);
      const { size } = await stat(file);
      const entry = archive.entry({ name: `${hex(diffId)}/layer.tar`, size });
      await pipeline(createReadStream(file), entry);
    }
    const manifest = [
      {
        Config: `${hex(service.configDigest)}.json`,
        RepoTags: [tag],
        Layers: service.layers.map((l) => `${hex(l.diffId)}/layer.tar`),
      },
    ];
    archive.entry({ name: 'manifest.json' }, JSON.stringify(manifest));
    archive.finalize();
  };
  await Promise.all([
    write().catch((error: Error) => {
      archive.destroy(error);
      throw error;
    }),
    loading,
  ]);
  const image = await engine.image(service.configDigest);
  if (!image)
    throw new ImageMismatchError(`engine does not show image ${service.configDigest} after loading`);
  const layers = image.RootFS?.Layers ?? [];
  const expected = service.layers.map((l) => l.diffId);
  if (layers.join(',') !== expected.join(','))
    throw new ImageMismatchError(
      `image ${service.configDigest} has layers ${layers.join(',')}, expected ${expected.join(',')}`,
    );
}
