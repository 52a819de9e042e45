import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { Inject, Injectable, Logger } from '@nestjs/common';
import {
  ConflictError,
  ForbiddenError,
  MANIFEST_SCHEMA_VERSION,
  ManifestSignatureError,
  NotFoundError,
  PayloadTooLargeError,
  Release,
  ReleaseManifest,
  ReleaseService,
  ReleaseSignature,
  signManifest,
  verifyThreshold,
} from '@ferry/protocol';
import {
  ArchiveImage,
  ImageArchive,
  archiveLimits,
  readImageArchive,
  readReleaseBundle,
  releaseServicesOf,
} from '@ferry/delta';
import { BlobStore } from '../blobs/blob.repository';
import { Clock } from '../clock/clock';
import { FERRY_CONFIG } from '../config/config.module';
import { FerryConfig } from '../config/config';
import { FleetsService } from '../fleets/fleets.service';
import { ReleaseEvents } from './release-events';
import { ReleasesRepository } from './releases.repository';

export interface PushedRelease extends Release {
  /** Layers this push brought that the server did not have before. */
  newLayers: string[];
  format: ImageArchive['format'];
}

@Injectable()
export class ReleasesService {
  private readonly logger = new Logger(ReleasesService.name);

  constructor(
    private readonly releases: ReleasesRepository,
    private readonly fleets: FleetsService,
    private readonly blobs: BlobStore,
    private readonly events: ReleaseEvents,
    private readonly clock: Clock,
    @Inject(FERRY_CONFIG) private readonly config: FerryConfig,
  ) {}

  /**
   * Stores a release from an image archive stream. Everything is read and verified in a staging
   * folder first; blobs enter the store and the release enters the database only when the whole
   * archive checked out, so a rejected push leaves nothing behind.
   */
  async push(
    fleetRef: string,
    body: Readable,
    options: { version?: number; note?: string; declaredBytes?: number; bundle?: boolean },
  ): Promise<PushedRelease> {
    const fleet = await this.fleets.get(fleetRef);
    const max = this.config.limits.maxReleaseBytes;
    if (options.declaredBytes !== undefined && options.declaredBytes > max) {
      throw new PayloadTooLargeError(
        `release archive of ${options.declaredBytes} bytes exceeds the ${max}-byte limit (FERRY_MAX_RELEASE_BYTES)`,
        { limit: max },
      );
    }
    const highest = options.version === undefined ? 0 : await this.releases.highestVersion(fleet.id);
    if (options.version !== undefined && options.version < highest)
      throw new ConflictError(
        `release versions only grow: fleet ${fleet.slug} is at v${highest}, push v${highest + 1} or more`,
      );
    if (options.version !== undefined && (await this.releases.versionTaken(fleet.id, options.version))) {
      throw new ConflictError(`fleet ${fleet.slug} already has release version ${options.version}`);
    }
    const staging = await this.blobs.openStaging();
    try {
      const limits = archiveLimits({
        maxArchiveBytes: max,
        maxUncompressedBytes: max,
        maxCompressionRatio: this.config.limits.maxDecompressionRatio,
        maxImages: this.config.limits.maxImagesPerRelease,
      });
      const idle = { idleTimeoutMs: this.config.limits.uploadIdleSeconds * 1000 };
      let format: ImageArchive['format'];
      let images: ArchiveImage[];
      let compose: Buffer | null = null;
      if (options.bundle) {
        const bundle = await readReleaseBundle(body, staging.path, limits, idle);
        compose = bundle.compose;
        format = bundle.archives[0]?.format ?? 'docker-archive';
        // The same image in two archives is one image.
        const seen = new Map<string, ArchiveImage>();
        for (const image of bundle.archives.flatMap((a) => a.images))
          if (!seen.has(image.config.digest)) seen.set(image.config.digest, image);
        images = [...seen.values()];
      } else {
        const archive = await readImageArchive(body, staging.path, limits, idle);
        format = archive.format;
        images = archive.images;
      }
      const parsed = releaseServicesOf(
        images,
        compose,
        compose ? await this.fleets.bindMounts(fleet.id) : [],
      );
      const services: ReleaseService[] = parsed.services;
      const app = { name: fleet.slug, ...parsed.app };
      const diffIds = images.flatMap((image) => image.layers.map((layer) => layer.diffId));
      const known = await this.releases.knownLayers(diffIds);
      for (const image of images) {
        await this.blobs.adopt(image.config.path, image.config.digest);
        for (const layer of image.layers) {
          await this.blobs.adopt(layer.path, layer.diffId);
          await this.blobs.adopt(layer.gzipPath, layer.gzipDigest);
        }
      }
      const id = randomUUID();
      const createdAt = this.clock.iso();
      const uniqueSizes = new Map(services.flatMap((s) => s.layers.map((l) => [l.diffId, l.size] as const)));
      const totalSize = [...uniqueSizes.values()].reduce((a, b) => a + b, 0);
      const release = await this.releases
        .insert(fleet.id, options.version, (version) => {
          const manifest: ReleaseManifest = {
            schemaVersion: MANIFEST_SCHEMA_VERSION,
            fleetId: fleet.id,
            releaseId: id,
            version,
            createdAt,
            services,
            app,
          };
          return {
            id,
            fleetId: fleet.id,
            version,
            note: options.note ?? null,
            createdAt,
            services,
            totalSize,
            manifest,
            signature: signManifest(manifest, fleet.signingPrivateKey),
            // A fleet with pinned release keys: the owners sign next (POST /v1/releases/:id/signatures).
            ownerSignatures: fleet.releaseTrust ? [] : null,
          };
        })
        .catch((error: unknown) => {
          if (/unique|duplicate/i.test((error as Error).message)) {
            throw new ConflictError(`fleet ${fleet.slug} already has this release version; push again`);
          }
          throw error;
        });
      this.logger.log(
        `fleet ${fleet.slug}: release v${release.version} stored (${services.length} services, ${uniqueSizes.size} layers)`,
      );
      this.events.pushed$.next(release);
      return {
        ...release,
        newLayers: [...new Set(diffIds)].filter((d) => !known.has(d)),
        format,
      };
    } finally {
      await staging.discard();
    }
  }

  async list(fleetRef: string): Promise<Release[]> {
    return this.releases.listForFleet((await this.fleets.get(fleetRef)).id);
  }

  /**
   * Adds the release owners' signatures of a release's manifest; refused (nothing stored) unless the
   * threshold of the fleet's current release keys signed it.
   */
  async sign(id: string, signatures: ReleaseSignature[]): Promise<Release> {
    const release = await this.get(id);
    const fleet = await this.fleets.get(release.fleetId);
    if (!fleet.releaseTrust)
      throw new ConflictError(`fleet ${fleet.slug} has no release keys: the server signs its releases`);
    try {
      verifyThreshold(release.manifest, signatures, fleet.releaseTrust, `release v${release.version}`);
    } catch (error) {
      if (error instanceof ManifestSignatureError) throw new ForbiddenError(error.message);
      throw error;
    }
    await this.releases.setOwnerSignatures(id, signatures);
    return { ...release, ownerSignatures: signatures };
  }

  /**
   * Throws unless `release` may go to devices: a fleet with pinned release keys needs the owners'
   * signatures first (the agent would refuse it anyway; this says so before a rollout starts).
   */
  async requireDeployable(release: Release): Promise<void> {
    const fleet = await this.fleets.get(release.fleetId);
    if (!fleet.releaseTrust) return;
    try {
      // No owner signatures at all (a release pushed unsigned, or a row written around the API) is
      // "0 valid signatures", not a pass.
      verifyThreshold(
        release.manifest,
        release.ownerSignatures ?? [],
        fleet.releaseTrust,
        `release v${release.version}`,
      );
    } catch (error) {
      if (error instanceof ManifestSignatureError)
        throw new ConflictError(`${error.message}: sign it first (ferry push --sign, or ferry release sign)`);
      throw error;
    }
  }

  async get(id: string): Promise<Release> {
    const release = await this.releases.find(id);
    if (!release) throw new NotFoundError(`no release ${id}`);
    return release;
  }
}
