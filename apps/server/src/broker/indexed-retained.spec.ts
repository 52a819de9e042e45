import { Readable } from 'node:stream';
import memoryPersistence from 'aedes-persistence';
import { RetainedStore, indexRetained } from './indexed-retained';

async function topics(stream: Readable): Promise<string[]> {
  const out: string[] = [];
  for await (const packet of stream) out.push((packet as { topic: string }).topic);
  return out.sort();
}

const packet = (topic: string, payload: string) => ({
  cmd: 'publish' as const,
  topic,
  payload: Buffer.from(payload),
  qos: 1 as const,
  retain: true,
  dup: false,
  brokerId: 'test',
  brokerCounter: 1,
});

describe('indexRetained', () => {
  it('answers exact filters by lookup, wildcard filters by the original scan, and forgets cleared topics', async () => {
    const store = indexRetained(memoryPersistence() as unknown as RetainedStore);
    await store.storeRetained(packet('ferry/v1/devices/a/target', 'A'));
    await store.storeRetained(packet('ferry/v1/devices/b/target', 'B'));
    await store.storeRetained(packet('ferry/v1/devices/a/presence', 'on'));
    expect(await topics(store.createRetainedStreamCombi(['ferry/v1/devices/a/target']))).toEqual([
      'ferry/v1/devices/a/target',
    ]);
    expect(
      await topics(
        store.createRetainedStreamCombi(['ferry/v1/devices/a/target', 'ferry/v1/devices/a/target']),
      ),
    ).toEqual(['ferry/v1/devices/a/target']);
    expect(await topics(store.createRetainedStreamCombi(['ferry/v1/devices/+/target']))).toEqual([
      'ferry/v1/devices/a/target',
      'ferry/v1/devices/b/target',
    ]);
    expect(await topics(store.createRetainedStreamCombi(['ferry/v1/devices/a/#']))).toEqual([
      'ferry/v1/devices/a/presence',
      'ferry/v1/devices/a/target',
    ]);
    // [MQTT-3.3.1-10] an empty retained payload deletes the retained message.
    await store.storeRetained(packet('ferry/v1/devices/a/target', ''));
    expect(await topics(store.createRetainedStreamCombi(['ferry/v1/devices/a/target']))).toEqual([]);
    expect(await topics(store.createRetainedStreamCombi(['ferry/v1/devices/a/#']))).toEqual([
      'ferry/v1/devices/a/presence',
    ]);
  });
});
