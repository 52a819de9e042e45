/**
 * Where a benchmark's own process spends CPU and keeps memory, read through the inspector: a CPU
 * profile summed by function (self time) and a heap snapshot summed by constructor (self size).
 */
import { Session } from 'node:inspector/promises';

export interface Share {
  name: string;
  /** Self time in ms (CPU) or self size in bytes (heap). */
  amount: number;
  /** Nodes or samples behind it. */
  count: number;
}

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
}

function top(map: Map<string, Share>, n: number): Share[] {
  return [...map.values()].sort((a, b) => b.amount - a.amount).slice(0, n);
}

function shortUrl(url: string): string {
  const modules = url.lastIndexOf('node_modules/');
  if (modules >= 0) return url.slice(modules + 'node_modules/'.length);
  const parts = url.split('/');
  return parts.slice(-2).join('/');
}

/** Starts a CPU profile of this process; the returned function stops it and sums self time by function. */
export async function startCpuProfile(): Promise<(n: number) => Promise<{ totalMs: number; top: Share[] }>> {
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 500 });
  await session.post('Profiler.start');
  return async (n) => {
    const { profile } = (await session.post('Profiler.stop')) as { profile: Profile };
    session.disconnect();
    const byId = new Map(profile.nodes.map((node) => [node.id, node]));
    const msPerSample = (profile.endTime - profile.startTime) / 1000 / Math.max(1, profile.samples.length);
    const shares = new Map<string, Share>();
    for (const id of profile.samples) {
      const frame = byId.get(id)?.callFrame;
      if (!frame) continue;
      const name = `${frame.functionName || '(anonymous)'} ${shortUrl(frame.url)}:${frame.lineNumber + 1}`;
      const share = shares.get(name) ?? { name, amount: 0, count: 0 };
      share.amount += msPerSample;
      share.count += 1;
      shares.set(name, share);
    }
    return { totalMs: (profile.endTime - profile.startTime) / 1000, top: top(shares, n) };
  };
}

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
  nodes: number[];
  strings: string[];
}

/** A heap snapshot of this process summed by constructor name (objects) or node type (the rest). */
export async function heapByConstructor(n: number): Promise<{ totalBytes: number; top: Share[] }> {
  const session = new Session();
  session.connect();
  const chunks: string[] = [];
  session.on('HeapProfiler.addHeapSnapshotChunk', (m) => chunks.push(m.params.chunk));
  await session.post('HeapProfiler.takeHeapSnapshot', { reportProgress: false });
  session.disconnect();
  const snapshot = JSON.parse(chunks.join('')) as Snapshot;
  const fields = snapshot.snapshot.meta.node_fields;
  const types = snapshot.snapshot.meta.node_types[0];
  const width = fields.length;
  const typeAt = fields.indexOf('type');
  const nameAt = fields.indexOf('name');
  const sizeAt = fields.indexOf('self_size');
  const shares = new Map<string, Share>();
  let totalBytes = 0;
  for (let i = 0; i < snapshot.nodes.length; i += width) {
    const type = types[snapshot.nodes[i + typeAt] ?? 0] ?? '?';
    const size = snapshot.nodes[i + sizeAt] ?? 0;
    totalBytes += size;
    const name =
      type === 'object' || type === 'closure' || type === 'native'
        ? `${type} ${snapshot.strings[snapshot.nodes[i + nameAt] ?? 0] ?? '?'}`
        : `(${type})`;
    const share = shares.get(name) ?? { name, amount: 0, count: 0 };
    share.amount += size;
    share.count += 1;
    shares.set(name, share);
  }
  return { totalBytes, top: top(shares, n) };
}
