import { RangeNotSatisfiableError } from '@ferry/protocol';
import { parseByteRange } from './byte-range';

describe('parseByteRange', () => {
  it.each([
    [undefined, null],
    ['bytes=0-9', { start: 0, end: 9 }],
    ['bytes=90-', { start: 90, end: 99 }],
    ['bytes=-10', { start: 90, end: 99 }],
    ['bytes=-500', { start: 0, end: 99 }],
    ['bytes=95-200', { start: 95, end: 99 }],
    ['bytes=0-1,5-6', null],
    ['items=0-5', null],
  ])('%s → %j', (header, expected) => {
    expect(parseByteRange(header, 100)).toEqual(expected);
  });

  it.each(['bytes=100-', 'bytes=100-120', 'bytes=-0', 'bytes=9-3', 'bytes=abc', 'bytes=-'])(
    'refuses %s with 416',
    (header) => {
      expect(() => parseByteRange(header, 100)).toThrow(RangeNotSatisfiableError);
    },
  );
});
