import { ByteCollector } from './byte-collector';

describe('ByteCollector', () => {
  it('hands out what was appended since the last take, in order', () => {
    const bytes = new ByteCollector(8);
    bytes.append(Buffer.from('abc'));
    bytes.append(Buffer.from('defgh'));
    expect(bytes.take(false).toString()).toBe('abcdefgh');
    bytes.append(Buffer.from('xyz'));
    expect(bytes.take(false).toString()).toBe('xyz');
    expect(bytes.take(false)).toHaveLength(0);
  });

  it('reuses one buffer while batches fit, and grows to hold a larger batch whole', () => {
    const size = 1 << 13; // above Buffer's pool: a buffer of its own
    const bytes = new ByteCollector(size);
    bytes.append(Buffer.alloc(size, 'a'));
    const first = bytes.take(true);
    bytes.append(Buffer.alloc(size, 'b'));
    const second = bytes.take(true);
    expect(second.buffer).toBe(first.buffer);
    expect(first.toString()).toBe('b'.repeat(size)); // a view: only valid until the next append
    bytes.append(Buffer.alloc(size, 'c'));
    bytes.append(Buffer.from('d'));
    const grown = bytes.take(true);
    expect(grown.toString()).toBe(`${'c'.repeat(size)}d`);
    expect(grown.buffer).not.toBe(first.buffer);
    expect(grown.buffer.byteLength).toBe(2 * size);
  });

  it('gives a copy of its own when asked not to reuse', () => {
    const bytes = new ByteCollector(16);
    bytes.append(Buffer.from('kept'));
    const kept = bytes.take(false);
    bytes.append(Buffer.from('next'));
    expect(kept.toString()).toBe('kept');
  });
});
