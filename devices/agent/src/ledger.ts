import { join } from 'node:path';
import { readJson, writeFileAtomic } from './atomic-file';

/** What the ledger knows of one blob. */
export interface BlobRecord {
  /** Bytes of the `.part` file that were fsynced before this record was written. */
  done: number;
  /** Bytes fetched from the network for this blob, over every run; equals `done` unless bytes were refetched. */
  fetched: number;
  complete: boolean;
}

interface LedgerFile {
  /** Every byte the agent ever fetched and kept (the persisted downloaded-bytes counter). */
  totalFetched: number;
  blobs: Record<string, BlobRecord>;
}

/**
 * The persisted downloaded-bytes counter. A byte counts once it is fsynced in its `.part` file and
 * recorded here; on restart a `.part` file is cut back to its recorded length, so a byte is either
 * finished (counted, never fetched again) or not (fetched again, counted once).
 */
export class DownloadLedger {
  private state: LedgerFile = { totalFetched: 0, blobs: {} };
  private writing: Promise<void> = Promise.resolve();

  private constructor(private readonly path: string) {}

  static async open(dataDir: string): Promise<DownloadLedger> {
    const ledger = new DownloadLedger(join(dataDir, 'download-ledger.json'));
    ledger.state = (await readJson<LedgerFile>(ledger.path)) ?? ledger.state;
    return ledger;
  }

  get(digest: string): BlobRecord {
    return (this.state.blobs[digest] ??= { done: 0, fetched: 0, complete: false });
  }

  get totalFetched(): number {
    return this.state.totalFetched;
  }

  snapshot(): LedgerFile {
    return JSON.parse(JSON.stringify(this.state)) as LedgerFile;
  }

  /** Records `added` newly fsynced bytes of `digest`, durably. */
  async advance(digest: string, done: number, added: number): Promise<void> {
    const record = this.get(digest);
    record.done = done;
    record.fetched += added;
    this.state.totalFetched += added;
    await this.persist();
  }

  async reset(digest: string): Promise<void> {
    const record = this.get(digest);
    record.done = 0;
    record.complete = false;
    await this.persist();
  }

  async complete(digest: string): Promise<void> {
    this.get(digest).complete = true;
    await this.persist();
  }

  /** Forgets blobs that are no longer kept on disk (after an update commits). */
  async forget(keep: (digest: string) => boolean): Promise<void> {
    for (const digest of Object.keys(this.state.blobs)) if (!keep(digest)) delete this.state.blobs[digest];
    await this.persist();
  }

  private persist(): Promise<void> {
    const data = JSON.stringify(this.state);
    this.writing = this.writing.catch(() => undefined).then(() => writeFileAtomic(this.path, data));
    return this.writing;
  }
}
