// Kept rather than docker-modem: the agent is one bundled file on small devices, and docker-modem
// brings ssh2 (with an optional native addon) and split-ca for transports the agent never uses.
import { request, type IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { EngineError } from './errors';

/** The subset of `GET /images/{id}/json` the agent reads. */
export interface EngineImage {
  Id: string;
  RepoTags: string[] | null;
  RootFS?: { Layers?: string[] };
  Config?: { Healthcheck?: { Test?: string[] } | null } | null;
}

export interface EngineContainer {
  Id: string;
  Names: string[];
  Image: string;
  ImageID: string;
  State: string;
  Labels: Record<string, string>;
}

export interface ContainerInspect {
  Id: string;
  Name?: string;
  Image?: string;
  State: {
    Status: string;
    Running: boolean;
    Restarting: boolean;
    ExitCode: number;
    Health?: { Status: string };
  };
  RestartCount: number;
  Config?: { Labels?: Record<string, string> | null };
}

/** The body of `POST /containers/create` (Docker Engine API 1.41), as containers.ts builds it. */
export interface CreateContainerBody {
  Image: string;
  Labels: Record<string, string>;
  HostConfig: Record<string, unknown>;
  [key: string]: unknown;
}

export interface EngineVolume {
  Name: string;
  Labels: Record<string, string> | null;
}

export interface EngineNetwork {
  Id: string;
  Name: string;
  Labels: Record<string, string> | null;
}

const API = '/v1.41';

/**
 * A client of the Docker Engine API 1.41 (balenaEngine 20.10 speaks it) over the engine's unix
 * socket. Only this file talks to the engine.
 */
export class EngineClient {
  constructor(readonly socketPath: string) {}

  private raw(
    method: string,
    path: string,
    body?: Readable | Buffer,
    contentType?: string,
  ): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const req = request(
        {
          socketPath: this.socketPath,
          method,
          path: `${API}${path}`,
          headers: body
            ? {
                'content-type': contentType ?? 'application/json',
                ...(Buffer.isBuffer(body)
                  ? { 'content-length': body.length }
                  : { 'transfer-encoding': 'chunked' }),
              }
            : {},
        },
        resolve,
      );
      req.on('error', reject);
      if (!body) req.end();
      else if (Buffer.isBuffer(body)) req.end(body);
      // pipeline: a failing body aborts the request (rejecting through its 'error' handler).
      else pipeline(body, req).catch(reject);
    });
  }

  private async call<T>(method: string, path: string, json?: unknown, okStatuses: number[] = []): Promise<T> {
    const res = await this.raw(
      method,
      path,
      json === undefined ? undefined : Buffer.from(JSON.stringify(json)),
    );
    const text = await readAll(res);
    const status = res.statusCode ?? 0;
    if ((status < 200 || status >= 300) && !okStatuses.includes(status))
      throw new EngineError(`engine ${method} ${path}: ${status} ${text.trim()}`, status);
    return (
      text.length > 0 && res.headers['content-type']?.includes('json') ? JSON.parse(text) : undefined
    ) as T;
  }

  async version(): Promise<{ ApiVersion: string; Version: string; Arch: string }> {
    return this.call('GET', '/version');
  }

  async images(): Promise<{ Id: string; RepoTags: string[] | null }[]> {
    return this.call('GET', '/images/json');
  }

  /** The image, or null when the engine does not have it. */
  async image(id: string): Promise<EngineImage | null> {
    try {
      return await this.call<EngineImage>('GET', `/images/${encodeURIComponent(id)}/json`);
    } catch (error) {
      if (error instanceof EngineError && error.status === 404) return null;
      throw error;
    }
  }

  /** Every layer diffID the engine holds, from the images it has. */
  async layerDiffIds(): Promise<Map<string, string>> {
    const holder = new Map<string, string>();
    for (const { Id } of await this.images()) {
      const image = await this.image(Id);
      for (const diffId of image?.RootFS?.Layers ?? []) if (!holder.has(diffId)) holder.set(diffId, Id);
    }
    return holder;
  }

  /** `docker save` of one image as a stream (docker-archive tar). */
  async exportImage(id: string): Promise<IncomingMessage> {
    const res = await this.raw('GET', `/images/${encodeURIComponent(id)}/get`);
    if (res.statusCode !== 200)
      throw new EngineError(
        `engine export of ${id}: ${res.statusCode} ${await readAll(res)}`,
        res.statusCode ?? 0,
      );
    return res;
  }

  /** `docker load` of a docker-archive stream; throws when the engine reports an error in its output. */
  async loadImage(archive: Readable): Promise<string> {
    const res = await this.raw('POST', '/images/load?quiet=1', archive, 'application/x-tar');
    const text = await readAll(res);
    if (res.statusCode !== 200)
      throw new EngineError(`engine load: ${res.statusCode} ${text}`, res.statusCode ?? 0);
    for (const line of text.split('\n')) {
      if (!line.trim()) continue;
      const message = JSON.parse(line) as { error?: string; errorDetail?: { message?: string } };
      if (message.error)
        throw new EngineError(`engine load: ${message.errorDetail?.message ?? message.error}`, 500);
    }
    return text;
  }

  async removeImage(id: string): Promise<void> {
    await this.call('DELETE', `/images/${encodeURIComponent(id)}?noprune=0`, undefined, [404, 409]);
  }

  async containers(labelFilter: string): Promise<EngineContainer[]> {
    const filters = encodeURIComponent(JSON.stringify({ label: [labelFilter] }));
    return this.call('GET', `/containers/json?all=1&filters=${filters}`);
  }

  async inspectContainer(id: string): Promise<ContainerInspect | null> {
    try {
      return await this.call<ContainerInspect>('GET', `/containers/${encodeURIComponent(id)}/json`);
    } catch (error) {
      if (error instanceof EngineError && error.status === 404) return null;
      throw error;
    }
  }

  async createContainer(name: string, body: CreateContainerBody): Promise<string> {
    const created = await this.call<{ Id: string }>(
      'POST',
      `/containers/create?name=${encodeURIComponent(name)}`,
      body,
    );
    return created.Id;
  }

  /** Connects a created container to one more network (the create call takes only one). */
  async connectNetwork(network: string, container: string, aliases: string[]): Promise<void> {
    await this.call('POST', `/networks/${encodeURIComponent(network)}/connect`, {
      Container: container,
      EndpointConfig: { Aliases: aliases },
    });
  }

  async volumes(labelFilter: string): Promise<EngineVolume[]> {
    const filters = encodeURIComponent(JSON.stringify({ label: [labelFilter] }));
    const answer = await this.call<{ Volumes: EngineVolume[] | null }>('GET', `/volumes?filters=${filters}`);
    return answer.Volumes ?? [];
  }

  /** Creates a local volume; creating one that exists is a no-op (the engine answers with it). */
  async createVolume(
    name: string,
    labels: Record<string, string>,
    driverOpts: Record<string, string>,
  ): Promise<void> {
    await this.call('POST', '/volumes/create', {
      Name: name,
      Driver: 'local',
      DriverOpts: driverOpts,
      Labels: labels,
    });
  }

  async removeVolume(name: string): Promise<void> {
    await this.call('DELETE', `/volumes/${encodeURIComponent(name)}`, undefined, [404]);
  }

  async networks(labelFilter: string): Promise<EngineNetwork[]> {
    const filters = encodeURIComponent(JSON.stringify({ label: [labelFilter] }));
    return this.call('GET', `/networks?filters=${filters}`);
  }

  async createNetwork(name: string, labels: Record<string, string>, internal: boolean): Promise<void> {
    await this.call('POST', '/networks/create', {
      Name: name,
      CheckDuplicate: true,
      Driver: 'bridge',
      Internal: internal,
      Labels: labels,
    });
  }

  async startContainer(id: string): Promise<void> {
    await this.call('POST', `/containers/${encodeURIComponent(id)}/start`, undefined, [304]);
  }

  async stopContainer(id: string, timeoutSeconds = 10): Promise<void> {
    await this.call(
      'POST',
      `/containers/${encodeURIComponent(id)}/stop?t=${timeoutSeconds}`,
      undefined,
      [304, 404],
    );
  }

  async removeContainer(id: string): Promise<void> {
    await this.call('DELETE', `/containers/${encodeURIComponent(id)}?force=1`, undefined, [404]);
  }
}

async function readAll(res: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of res) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
