import { join } from 'node:path';
import type { TargetLayer } from '../../../libs/protocol/src/device-target';
import type { ReleaseManifest } from '../../../libs/protocol/src/release';
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
  swap?: { step: SwapStep; oldContainers: string[]; newContainers: string[] };
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
