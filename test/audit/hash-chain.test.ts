import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { AuditEvent } from '../../src/events/types.js';
import {
  canonicalEventBody,
  canonicalJson,
  eventHash,
  GENESIS_HASH,
  verifyChain,
} from '../../src/audit/hash-chain.js';
import { buildChain, statementEvent } from './sample-events.js';

const anythingJsonable = fc
  .anything({
    withBoxedValues: true,
    withDate: true,
    withMap: true,
    withSet: true,
    withNullPrototype: true,
    withObjectString: true,
    withSparseArray: true,
    withTypedArray: true,
  })
  .filter((v) => {
    try {
      return JSON.stringify(v) !== undefined;
    } catch {
      return false;
    }
  });

function shuffleKeys(value: unknown, rnd: () => number): unknown {
  if (Array.isArray(value)) return value.map((v) => shuffleKeys(v, rnd));
  if (value === null || typeof value !== 'object') return value;
  const keys = Object.keys(value).sort(() => rnd() - 0.5);
  const out: Record<string, unknown> = {};
  for (const k of keys) {
    // defineProperty, not assignment: an own "__proto__" key must stay a key.
    Object.defineProperty(out, k, {
      value: shuffleKeys((value as Record<string, unknown>)[k], rnd),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return out;
}

describe('canonicalJson', () => {
  it('sorts keys at every depth and has no whitespace', () => {
    expect(canonicalJson({ b: 1, a: [{ d: 1, c: { z: null, y: 'x' } }, 2], 'é': true, A: 'q' })).toBe(
      '{"A":"q","a":[{"c":{"y":"x","z":null},"d":1},2],"b":1,"é":true}',
    );
  });

  it('follows JSON.stringify for values JSON cannot represent directly', () => {
    const date = new Date(Date.UTC(2025, 0, 2, 3, 4, 5, 6));
    expect(
      canonicalJson({ u: undefined, f: () => 1, d: date, n: Number.NaN, i: -Infinity, z: -0, arr: [undefined, () => 1] }),
    ).toBe('{"arr":[null,null],"d":"2025-01-02T03:04:05.006Z","i":null,"n":null,"z":0}');
    expect(canonicalJson({ toJSON: () => ({ b: 2, a: 1 }) })).toBe('{"a":1,"b":2}');
    expect(canonicalJson('line\n"quoted"\u2028')).toBe(JSON.stringify('line\n"quoted"\u2028'));
  });

  it('keeps an own "__proto__" key from parsed JSON as data', () => {
    const parsed = JSON.parse('{"b":2,"__proto__":{"polluted":true}}') as unknown;
    expect(canonicalJson(parsed)).toBe('{"__proto__":{"polluted":true},"b":2}');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('refuses BigInt, cycles and bare undefined, and allows shared references', () => {
    expect(() => canonicalJson({ a: 1n })).toThrow(TypeError);
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic.self = { back: cyclic };
    expect(() => canonicalJson(cyclic)).toThrow(/cycle/);
    expect(() => canonicalJson(undefined)).toThrow(TypeError);
    const shared = { x: 1 };
    expect(canonicalJson({ a: shared, b: [shared] })).toBe('{"a":{"x":1},"b":[{"x":1}]}');
  });

  it('parses to what JSON.stringify produces, and is a fixed point after parsing (fuzzed)', () => {
    fc.assert(
      fc.property(anythingJsonable, (value) => {
        const canonical = canonicalJson(value);
        const viaStringify = JSON.parse(JSON.stringify(value)) as unknown;
        expect(JSON.parse(canonical)).toStrictEqual(viaStringify);
        expect(canonicalJson(viaStringify)).toBe(canonical);
        expect(canonicalJson(JSON.parse(canonical))).toBe(canonical);
      }),
      { numRuns: 500 },
    );
  });

  it('does not depend on key insertion order (fuzzed)', () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.integer(), (value, seed) => {
        let state = seed;
        const rnd = () => ((state = (state * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
        expect(canonicalJson(shuffleKeys(value, rnd))).toBe(canonicalJson(value));
      }),
      { numRuns: 300 },
    );
  });
});

describe('eventHash', () => {
  const fields = {
    seq: 1,
    chain: 'main',
    type: 'statement.started' as const,
    time: '2025-01-01T00:00:00.000Z',
    sessionId: 's-1',
    principal: { subject: 'alice', issuer: 'https://idp.example.com', kind: 'person' as const },
    resource: 'orders',
    data: { sql: 'SELECT 1', grant: 'read' },
  };

  it('matches a fixed vector, so other store implementations can check themselves against it', () => {
    expect(eventHash(GENESIS_HASH, fields)).toBe('d9ac272dffe21dc0edf3a02f5f3866611dc80cc066a77a45a772c531d6aa206c');
  });

  it('covers every hashed field and the previous hash', () => {
    const base = eventHash(GENESIS_HASH, fields);
    const variants = [
      { ...fields, seq: 2 },
      { ...fields, chain: 'other' },
      { ...fields, type: 'statement.completed' as const },
      { ...fields, time: '2025-01-01T00:00:00.001Z' },
      { ...fields, sessionId: 's-2' },
      { ...fields, sessionId: undefined },
      { ...fields, principal: { ...fields.principal, kind: 'machine' as const } },
      { ...fields, resource: 'billing' },
      { ...fields, data: { sql: 'SELECT 2', grant: 'read' } },
    ];
    for (const v of variants) expect(eventHash(GENESIS_HASH, v)).not.toBe(base);
    expect(eventHash('f'.repeat(64), fields)).not.toBe(base);
  });

  it('builds the same body as canonicalJson of the hashed fields (fuzzed)', () => {
    const optionalString = fc.option(fc.string(), { nil: undefined });
    fc.assert(
      fc.property(
        fc.record({
          seq: fc.integer({ min: 1 }),
          chain: fc.string(),
          type: fc.constantFrom('session.opened' as const, 'statement.started' as const),
          time: fc.string(),
          sessionId: optionalString,
          principal: fc.option(
            fc.record({ issuer: fc.string(), subject: fc.string(), kind: fc.constantFrom('person' as const, 'machine' as const) }),
            { nil: undefined },
          ),
          resource: optionalString,
          data: fc.dictionary(fc.string(), fc.jsonValue()),
        }),
        (e) => {
          const { seq, chain, type, time, sessionId, principal, resource, data } = e;
          expect(canonicalEventBody(e)).toBe(canonicalJson({ seq, chain, type, time, sessionId, principal, resource, data }));
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('verifyChain', () => {
  const chain = buildChain(Array.from({ length: 10 }, (_, i) => statementEvent(i)));

  it('accepts an intact chain and reports its head', () => {
    expect(verifyChain(chain)).toEqual({ ok: true, count: 10, lastSeq: 10, headHash: chain[9].hash });
    expect(verifyChain([])).toEqual({ ok: true, count: 0, lastSeq: 0, headHash: GENESIS_HASH });
  });

  it('verifies a tail from an anchor', () => {
    expect(verifyChain(chain.slice(4), { seq: 4, hash: chain[3].hash })).toMatchObject({ ok: true, count: 6, lastSeq: 10 });
    expect(verifyChain(chain.slice(4), { seq: 4, hash: chain[2].hash })).toMatchObject({ ok: false, seq: 5 });
    expect(verifyChain(chain.slice(4))).toMatchObject({ ok: false, seq: 1, reason: 'missing' });
  });

  it('finds an edited event', () => {
    const edited = chain.map((e) => (e.seq === 6 ? { ...e, data: { ...e.data, sql: 'SELECT 1' } } : e));
    expect(verifyChain(edited)).toMatchObject({ ok: false, seq: 6, reason: 'hash_mismatch' });
  });

  it('finds an edited event whose hash was recomputed, at the next link', () => {
    const forged = { ...chain[5], resource: 'elsewhere' };
    const rehashed = { ...forged, hash: eventHash(forged.prevHash, forged) };
    const edited = chain.map((e) => (e.seq === 6 ? rehashed : e));
    expect(verifyChain(edited)).toMatchObject({ ok: false, seq: 7, reason: 'prev_hash_mismatch' });
  });

  it('finds a deleted event', () => {
    expect(verifyChain(chain.filter((e) => e.seq !== 4))).toMatchObject({ ok: false, seq: 4, reason: 'missing' });
  });

  it('finds deleted events renumbered to close the gap', () => {
    const renumbered = chain.filter((e) => e.seq !== 4).map((e) => (e.seq > 4 ? { ...e, seq: e.seq - 1 } : e));
    expect(verifyChain(renumbered)).toMatchObject({ ok: false, seq: 4 });
  });

  it('finds reordered events, whether or not their sequence numbers were swapped too', () => {
    const reordered = [...chain];
    [reordered[2], reordered[3]] = [reordered[3], reordered[2]];
    expect(verifyChain(reordered)).toMatchObject({ ok: false, seq: 3, reason: 'missing' });
    const swapped = reordered.map((e, i) => ({ ...e, seq: i + 1 }));
    expect(verifyChain(swapped)).toMatchObject({ ok: false, seq: 3 });
  });

  it('finds an event of another chain', () => {
    const mixed = chain.map((e) => (e.seq === 2 ? { ...e, chain: 'other' } : e));
    expect(verifyChain(mixed)).toMatchObject({ ok: false, seq: 2, reason: 'wrong_chain' });
  });

  it('reports unhashable content as a mismatch instead of throwing', () => {
    const broken = chain.map((e) => (e.seq === 3 ? { ...e, data: { n: 1n } } : e));
    expect(verifyChain(broken)).toMatchObject({ ok: false, seq: 3, reason: 'hash_mismatch' });
  });

  it('detects any single change to any event but the last, at or before the next event (fuzzed)', () => {
    const mutations: ((e: AuditEvent) => AuditEvent)[] = [
      (e) => ({ ...e, data: { ...e.data, extra: 1 } }),
      (e) => ({ ...e, time: '1999-01-01T00:00:00.000Z' }),
      (e) => ({ ...e, type: 'session.closed' }),
      (e) => ({ ...e, sessionId: undefined }),
      (e) => ({ ...e, principal: undefined }),
      (e) => ({ ...e, seq: e.seq + 1 }),
      (e) => ({ ...e, prevHash: GENESIS_HASH.replace(/0$/, '1') }),
      (e) => ({ ...e, hash: e.hash.replace(/^./, (c) => (c === 'a' ? 'b' : 'a')) }),
      (e) => {
        const forged = { ...e, data: { forged: true } };
        return { ...forged, hash: eventHash(forged.prevHash, forged) };
      },
    ];
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 8 }), fc.integer({ min: 0, max: mutations.length - 1 }), (index, m) => {
        const tampered = chain.map((e, i) => (i === index ? mutations[m](e) : e));
        const result = verifyChain(tampered);
        expect(result.ok).toBe(false);
        if (!result.ok) expect(result.seq).toBeLessThanOrEqual(index + 2);
      }),
    );
  });
});
