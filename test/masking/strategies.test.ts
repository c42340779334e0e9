import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { MASK_STRATEGIES, maskText, REDACTED } from '../../src/masking/strategies.js';

const key = Buffer.from('test-hash-key');
const WELL_FORMED = /^(?:[^\ud800-\udfff]|[\ud800-\udbff][\udc00-\udfff])*$/;

describe('maskText', () => {
  it('lists every strategy', () => {
    expect([...MASK_STRATEGIES].sort()).toEqual(['hash', 'null', 'partial', 'redact']);
  });

  it('redact replaces any value with the fixed marker', () => {
    expect(maskText('secret', { strategy: 'redact' }, key)).toBe(REDACTED);
    expect(maskText('', { strategy: 'redact' }, key)).toBe('[masked]');
  });

  it('null returns SQL NULL', () => {
    expect(maskText('secret', { strategy: 'null' }, key)).toBeNull();
  });

  it('partial keeps the last four characters by default', () => {
    expect(maskText('4111111111111111', { strategy: 'partial' }, key)).toBe('****1111');
    expect(maskText('abcdef', { strategy: 'partial', keepLast: 2 }, key)).toBe('****ef');
  });

  it('partial hides short values completely', () => {
    expect(maskText('abcd', { strategy: 'partial' }, key)).toBe('****');
    expect(maskText('abc', { strategy: 'partial' }, key)).toBe('****');
    expect(maskText('', { strategy: 'partial' }, key)).toBe('****');
    expect(maskText('abcdef', { strategy: 'partial', keepLast: 0 }, key)).toBe('****');
  });

  it('partial treats a bad keepLast as keeping nothing', () => {
    expect(maskText('abcdef', { strategy: 'partial', keepLast: -3 }, key)).toBe('****');
    expect(maskText('abcdef', { strategy: 'partial', keepLast: Number.NaN }, key)).toBe('****');
    expect(maskText('abcdef', { strategy: 'partial', keepLast: 2.9 }, key)).toBe('****ef');
  });

  it('partial counts code points and never splits a surrogate pair', () => {
    expect(maskText('x😀😀😀😀', { strategy: 'partial' }, key)).toBe('****😀😀😀😀');
    expect(maskText('😀😀😀😀', { strategy: 'partial' }, key)).toBe('****');
    expect(maskText('abc😀d', { strategy: 'partial', keepLast: 2 }, key)).toBe('****😀d');
    expect(maskText('ab😀', { strategy: 'partial', keepLast: 1 }, key)).toBe('****😀');
  });

  it('partial output never holds a lone surrogate taken from a pair', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 30 }), fc.integer({ min: 0, max: 10 }), (value, keepLast) => {
        const masked = maskText(value, { strategy: 'partial', keepLast }, key) as string;
        expect(masked.startsWith('****')).toBe(true);
        const tail = [...masked.slice(4)];
        expect(tail.length).toBeLessThanOrEqual(keepLast);
        expect(value.endsWith(masked.slice(4))).toBe(true);
        if ([...value].length <= keepLast) expect(masked).toBe('****');
        expect(masked.slice(4)).toMatch(WELL_FORMED);
      }),
    );
  });

  it('hash is 32 lowercase hex characters, deterministic and key dependent', () => {
    const a = maskText('alice@example.com', { strategy: 'hash' }, key);
    expect(a).toMatch(/^[0-9a-f]{32}$/);
    expect(maskText('alice@example.com', { strategy: 'hash' }, key)).toBe(a);
    expect(maskText('alice@example.com', { strategy: 'hash' }, Buffer.from('other-key'))).not.toBe(a);
    expect(maskText('bob@example.com', { strategy: 'hash' }, key)).not.toBe(a);
  });

  it('hash is HMAC-SHA256 over UTF-8, truncated to 16 bytes', () => {
    // HMAC-SHA256(key "key", "The quick brown fox jumps over the lazy dog") from RFC-style published vectors.
    expect(maskText('The quick brown fox jumps over the lazy dog', { strategy: 'hash' }, Buffer.from('key'))).toBe(
      'f7bc83f430538424b13298e6aa6fb143',
    );
  });

  it('hash is injective on a sample of distinct values', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.string(), { minLength: 2, maxLength: 20 }), (values) => {
        const hashes = new Set(values.map((v) => maskText(v, { strategy: 'hash' }, key)));
        expect(hashes.size).toBe(new Set(values.map((v) => Buffer.from(v, 'utf8').toString('hex'))).size);
      }),
    );
  });
});
