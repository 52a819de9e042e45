import { Readable } from 'node:stream';

interface RetainedPacket {
  topic: string;
  payload: Buffer | string;
}

/** The two methods of an Aedes persistence this wrapper replaces. */
export interface RetainedStore {
  storeRetained(packet: RetainedPacket, callback?: (error: Error | null) => void): Promise<void> | void;
  createRetainedStreamCombi(patterns: string[]): Readable;
}

/**
 * Makes an in-memory Aedes persistence answer a SUBSCRIBE without a wildcard with one map lookup.
 * aedes-persistence 11 tests every retained message against every filter of a SUBSCRIBE, so with one
 * retained notice and one retained presence per device, 10,000 devices subscribing cost 10,000 ×
 * 20,000 topic matches (BENCHMARKS.md: 224 connects/s before, see there for after). Filters with `+`
 * or `#` still go through the original scan. Only for the in-memory persistence: the Redis one is
 * shared between processes and matches by key prefix itself.
 */
export function indexRetained<P extends RetainedStore>(persistence: P): P {
  const byTopic = new Map<string, RetainedPacket>();
  const storeRetained = persistence.storeRetained.bind(persistence);
  const scan = persistence.createRetainedStreamCombi.bind(persistence);
  persistence.storeRetained = (packet, callback) => {
    // [MQTT-3.3.1-10] an empty retained payload deletes the retained message.
    if (packet.payload.length === 0) byTopic.delete(packet.topic);
    else byTopic.set(packet.topic, { ...packet });
    return storeRetained(packet, callback);
  };
  persistence.createRetainedStreamCombi = (patterns) => {
    if (patterns.some((p) => p.includes('+') || p.includes('#'))) return scan(patterns);
    const found = [...new Set(patterns)].map((p) => byTopic.get(p)).filter((p) => p !== undefined);
    return Readable.from(found);
  };
  return persistence;
}
