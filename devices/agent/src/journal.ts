import { join } from 'node:path';
import type { DeviceVariables, ReleaseManifest, TargetLayer } from '@ferry/protocol/wire';
import type { ServicePlan } from './containers';
import { readJson, writeFileAtomic } from './atomic-file';

/**
 * The phases of an update, in order. A restarted agent resumes `downloading`, `rebuilding` and
 * `loading` where they stopped (each is idempotent), undoes an interrupted `swapping` (new
 * containers removed, old ones started) and swaps again, and finishes `committing` or
 * `rolling_back`.
 */
export type UpdatePhase =
  'downloading' | 'rebuilding' | 'loading' | 'swapping' | 'committing' | 'rolling_back';

export type SwapStep = 'create' | 'stop_old' | 'start_new' | 'health';

export interface UpdateRecord {
  releaseId: string;
  version: number;
  manifest: ReleaseManifest;
  signature: string;
  /** The download plan, fixed when the update started. */
  layers: TargetLayer[];
  phase: UpdatePhase;
  /** diffIDs whose delta failed to download, verify or apply: fetched as full layers, with why. */
  fallbacks: Record<string, string>;
  /**
   * The swap: `plan` says per service what happens (kept services are never touched); `oldContainers`
   * are the containers replaced or removed, `newContainers` the ones created for this update.
   */
  swap?: { step: SwapStep; oldContainers: string[]; newContainers: string[]; plan?: ServicePlan[] };
  /** Same release, new configuration variables: only the services whose environment changed are recreated. */
  reconfigure?: boolean;
  /** The variables version the new containers are created with. */
  variablesVersion?: number | null;
  /**
   * Containers stopped (kill-then-download) or removed (delete-then-download, with what recreates
   * them) before the download started; a rollback brings them back.
   */
  early?: { stopped: string[]; deleted: { service: string; name: string; body: Record<string, unknown> }[] };
  /** Why the update is being rolled back. */
  rollbackReason?: string;
  startedAt: string;
}

export interface ReleaseRef {
  releaseId: string;
  version: number;
  manifest: ReleaseManifest;
}

export interface JournalState {
  /** The committed release the containers run. */
  current: ReleaseRef | null;
  /** The release before it, whose images stay as the next delta base. */
  previous: ReleaseRef | null;
  /** A release that failed or was rolled back: not retried until the target changes. */
  rejected: { releaseId: string; status: 'failed' | 'rolled_back'; reason: string } | null;
  update: UpdateRecord | null;
  /**
   * The configuration variables the device last received (docs/compose.md); the services' effective
   * environments are computed from them. Absent in journals of older agents.
   */
  variables?: DeviceVariables | null;
  /** A variables version whose containers failed their health check and were rolled back: not retried. */
  rejectedVariables?: number | null;
  /** The variables version the running containers were created with. */
  appliedVariables?: number | null;
  /**
   * The highest signed target version accepted and the highest release version run (docs/security.md
   * "Signed targets"): a lower target version is a replay, an older release a downgrade unless the
   * target is a requested rollback. Absent in journals of older agents (then 0 and `current`'s version).
   */
  highest?: { targetVersion: number; releaseVersion: number };
}

/** The agent's journal: one JSON file, replaced atomically before every step it describes is acted on. */
export class Journal {
  private constructor(
    private readonly path: string,
    public state: JournalState,
  ) {}

  static async open(dataDir: string): Promise<Journal> {
    const path = join(dataDir, 'journal.json');
    const state = (await readJson<JournalState>(path)) ?? {
      current: null,
      previous: null,
      rejected: null,
      update: null,
    };
    return new Journal(path, state);
  }

  /** Applies `change` and persists it; returns when the new state is durable. */
  async write(change: (state: JournalState) => void): Promise<void> {
    const next = JSON.parse(JSON.stringify(this.state)) as JournalState;
    change(next);
    await writeFileAtomic(this.path, JSON.stringify(next, null, 1));
    this.state = next;
  }

  async updateRecord(change: (update: UpdateRecord) => void): Promise<void> {
    await this.write((s) => {
      if (!s.update) throw new Error('no update in progress');
      change(s.update);
    });
  }
}
