import fc from 'fast-check';
import { fuzzRuns } from '../../../test/support/fuzz';
import { parseDevicePayload } from './device-payload';
import { MAX_DEVICE_PAYLOAD_BYTES } from './messages';
import { DEVICE_STATUSES } from './states';

describe('parseDevicePayload', () => {
  it('accepts a well-formed state report', () => {
    const payload = Buffer.from(
      JSON.stringify({ status: 'downloading', releaseId: 'r1', bytesDone: 5, bytesTotal: 10 }),
    );
    expect(parseDevicePayload('state', payload, MAX_DEVICE_PAYLOAD_BYTES)).toEqual({
      ok: true,
      kind: 'state',
      message: { status: 'downloading', releaseId: 'r1', bytesDone: 5, bytesTotal: 10 },
    });
  });

  it.each([
    ['too_large', Buffer.alloc(MAX_DEVICE_PAYLOAD_BYTES + 1, 0x20)],
    ['malformed_json', Buffer.from('{"status":')],
    ['malformed_json', Buffer.from([0xff, 0xfe, 0x00])],
    ['invalid_message', Buffer.from('{"status":"hacked"}')],
    ['invalid_message', Buffer.from('{"status":"running","bytesDone":10,"bytesTotal":5}')],
    ['invalid_message', Buffer.from('{"status":"running","__proto__":{"admin":true}}')],
    ['invalid_message', Buffer.from('[]')],
    ['invalid_message', Buffer.from('null')],
  ])('drops %s', (reason, payload) => {
    expect(parseDevicePayload('state', payload, MAX_DEVICE_PAYLOAD_BYTES)).toEqual({ ok: false, reason });
  });

  it('never throws and never accepts a message outside the schema, whatever the bytes (property)', () => {
    const jsonish = fc.oneof(
      fc.uint8Array({ maxLength: 2048 }).map((a) => Buffer.from(a)),
      fc.json({ maxDepth: 4 }).map((s) => Buffer.from(s)),
      fc
        .record(
          {
            status: fc.oneof(fc.constantFrom(...DEVICE_STATUSES), fc.string()),
            releaseId: fc.oneof(fc.string({ maxLength: 80 }), fc.constant(null), fc.integer()),
            bytesDone: fc.oneof(fc.integer(), fc.double(), fc.string()),
            bytesTotal: fc.oneof(fc.integer(), fc.double()),
            error: fc.string({ maxLength: 2100 }),
            extra: fc.anything(),
          },
          { requiredKeys: [] },
        )
        .map((o) => Buffer.from(JSON.stringify(o))),
    );
    fc.assert(
      fc.property(fc.constantFrom('state' as const, 'presence' as const), jsonish, (kind, payload) => {
        const parsed = parseDevicePayload(kind, payload, 1024);
        if (!parsed.ok) return ['too_large', 'malformed_json', 'invalid_message'].includes(parsed.reason);
        if (payload.length > 1024) return false;
        if (parsed.kind === 'state') {
          const m = parsed.message;
          return (
            DEVICE_STATUSES.includes(m.status) &&
            (m.bytesDone === undefined || (Number.isInteger(m.bytesDone) && m.bytesDone >= 0)) &&
            Object.keys(m).every((k) =>
              ['status', 'releaseId', 'bytesDone', 'bytesTotal', 'error', 'timestamp'].includes(k),
            )
          );
        }
        return parsed.message === null || ['online', 'offline'].includes(parsed.message.status);
      }),
      { numRuns: fuzzRuns(5000) },
    );
  });
});
