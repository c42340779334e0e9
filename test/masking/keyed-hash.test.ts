import { createHmac } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { KeyedHash } from '../../src/masking/keyed-hash.js';
import { hashBytes, maskText } from '../../src/masking/strategies.js';

describe('KeyedHash', () => {
  it('is HMAC-SHA256 for any key and message length, across block boundaries', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 100 }), fc.uint8Array({ minLength: 0, maxLength: 300 }), (key, msg) => {
        const k = Buffer.from(key);
        const m = Buffer.from(msg);
        expect(new KeyedHash(k).digest(m)).toEqual(createHmac('sha256', k).update(m).digest());
      }),
      { numRuns: 500 },
    );
  });

  it('keeps no state between messages', () => {
    const key = Buffer.alloc(32, 9);
    const h = new KeyedHash(key);
    const a = h.digest(Buffer.alloc(70, 1));
    h.digest(Buffer.from('something else'));
    expect(h.digest(Buffer.alloc(70, 1))).toEqual(a);
    for (const len of [55, 56, 63, 64, 119, 120, 128]) {
      const m = Buffer.alloc(len, 0x61);
      expect(h.digest(m)).toEqual(createHmac('sha256', key).update(m).digest());
    }
  });

  it('the hash strategy is the first 16 bytes of HMAC-SHA256 in hex, for bytes and for text alike', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 80 }), (s) => {
        const key = Buffer.alloc(32, 3);
        const expected = createHmac('sha256', key).update(s, 'utf8').digest('hex').slice(0, 32);
        expect(hashBytes(Buffer.from(s, 'utf8'), key).toString('latin1')).toBe(expected);
        expect(maskText(s, { strategy: 'hash' }, key)).toBe(expected);
      }),
    );
  });
});
