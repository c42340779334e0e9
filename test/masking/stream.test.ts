import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { CatalogSnapshot } from '../../src/masking/catalog.js';
import { maskingPlanFor } from '../../src/masking/rules.js';
import { maskText, REDACTED } from '../../src/masking/strategies.js';
import type { PolicyConfig } from '../../src/config/schema.js';
import type { Principal } from '../../src/identity/principal.js';
import { BackendScanner } from '../../src/protocols/postgres/backend-scanner.js';
import { BE } from '../../src/protocols/postgres/codec/message-types.js';
import { CatalogCache } from '../../src/protocols/postgres/masking/catalog-cache.js';
import { MASKED_MESSAGE_TYPES, SessionMasker, VALUE_MESSAGE_TYPES } from '../../src/protocols/postgres/masking/session-masker.js';
import { StreamSplicer, type Splice } from '../../src/protocols/postgres/splicer.js';

/**
 * The masking path of the relay without sockets: the backend's byte stream
 * cut into chunks at arbitrary offsets goes through the scanner, the masker
 * and the splicer, and what comes out must be correctly framed messages
 * with exactly the masked values, whatever the cuts.
 */
const TABLE = 16_500;
const TEXT = 25;
const INT4 = 23;
const key = Buffer.alloc(32, 7);
const principal: Principal = { issuer: 'https://idp.test', subject: 'ci', kind: 'machine', groups: [], claims: {}, expiresAt: 0 };

type Strategy = 'keep' | 'redact' | 'null' | 'hash';

function catalog(cols: readonly { type: number }[]): CatalogSnapshot {
  const columns = new Map(cols.map((c, i) => [i + 1, { name: `c${i + 1}`, typeOid: c.type }] as const));
  return {
    relations: new Map([[TABLE, { oid: TABLE, schema: 'app', name: 't', kind: 'table' as const, columns }]]),
    byName: new Map([['app.t', TABLE]]),
    userFunctions: new Set(),
    builtinFunctions: new Set(),
    searchPath: ['app'],
  };
}

function policies(strategies: readonly Strategy[]): PolicyConfig[] {
  const columns = strategies.flatMap((s, i) => (s === 'keep' ? [] : [{ match: [`app.t.c${i + 1}`], strategy: s, keep_last: 4 }]));
  return [
    {
      name: 'mask',
      effect: 'allow',
      when: {},
      resources: ['db'],
      masking: { columns, exempt: [], indirect: 'deny', notifications: 'redact', max_value_bytes: 1 << 20 },
    } as unknown as PolicyConfig,
  ];
}

function message(type: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(5);
  h[0] = type;
  h.writeInt32BE(payload.length + 4, 1);
  return Buffer.concat([h, payload]);
}

function rowDescription(types: readonly number[]): Buffer {
  const parts = [Buffer.from([0, types.length])];
  types.forEach((type, i) => {
    const f = Buffer.alloc(18);
    f.writeUInt32BE(TABLE, 0);
    f.writeInt16BE(i + 1, 4);
    f.writeUInt32BE(type, 6);
    f.writeInt16BE(-1, 10);
    f.writeInt32BE(-1, 12);
    f.writeInt16BE(0, 16);
    parts.push(Buffer.from(`c${i + 1}\0`), f);
  });
  return message(BE.RowDescription, Buffer.concat(parts));
}

function dataRow(values: readonly (Buffer | null)[]): Buffer {
  const parts: Buffer[] = [Buffer.from([values.length >> 8, values.length & 0xff])];
  for (const v of values) {
    const len = Buffer.alloc(4);
    len.writeInt32BE(v === null ? -1 : v.length);
    parts.push(len);
    if (v) parts.push(v);
  }
  return message(BE.DataRow, Buffer.concat(parts));
}

function parseMessages(stream: Buffer): { type: number; payload: Buffer }[] {
  const out: { type: number; payload: Buffer }[] = [];
  let pos = 0;
  while (pos < stream.length) {
    const len = stream.readInt32BE(pos + 1);
    out.push({ type: stream[pos]!, payload: stream.subarray(pos + 5, pos + 1 + len) });
    pos += 1 + len;
  }
  expect(pos).toBe(stream.length);
  return out;
}

function fields(payload: Buffer): (string | null)[] {
  const n = payload.readUInt16BE(0);
  const out: (string | null)[] = [];
  let pos = 2;
  for (let i = 0; i < n; i++) {
    const len = payload.readInt32BE(pos);
    pos += 4;
    out.push(len < 0 ? null : payload.subarray(pos, pos + len).toString('utf8'));
    if (len > 0) pos += len;
  }
  return out;
}

async function relay(strategies: readonly Strategy[], types: readonly number[], stream: Buffer, cuts: readonly number[]): Promise<Buffer> {
  const plan = maskingPlanFor(policies(strategies), principal, 'db')!;
  const cat = catalog(types.map((type) => ({ type })));
  const masker = new SessionMasker(plan, key, new CatalogCache(async () => cat), 'db', {} as never);
  await masker.loadCatalog();
  masker.layouts.query([{ maskAll: false }]);
  const wanted = new Set([...MASKED_MESSAGE_TYPES, BE.CommandComplete, BE.ReadyForQuery, BE.ErrorResponse]);
  let splices: Splice[] = [];
  const scanner = new BackendScanner(
    (t) => wanted.has(t),
    (type, payload, start, end) => {
      const replacement = masker.backendMessage(type, payload);
      if (replacement) splices.push({ start, end, replacement });
    },
  );
  const splicer = new StreamSplicer();
  const out: Buffer[] = [];
  let prev = 0;
  for (const cut of [...cuts, stream.length]) {
    const chunk = stream.subarray(prev, cut);
    prev = cut;
    const base = scanner.position;
    scanner.scan(chunk);
    const hold = scanner.incompleteStart((t) => VALUE_MESSAGE_TYPES.has(t));
    out.push(...splicer.take(chunk, base, splices, hold));
    splices = [];
  }
  return Buffer.concat(out);
}

const value = fc.oneof(
  fc.constant(null),
  fc.string({ maxLength: 40 }).map((s) => Buffer.from(s)),
  fc.integer({ min: 0, max: 70_000 }).map((n) => Buffer.alloc(n, 'x')),
);

describe('masking the backend stream', () => {
  it('frames and masks rows correctly for any layout, value sizes and chunk cuts', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.constantFrom<Strategy>('keep', 'redact', 'null', 'hash'), { minLength: 1, maxLength: 6 }),
        fc.integer({ min: 0, max: 8 }),
        fc.array(value, { minLength: 48, maxLength: 48 }),
        fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 12 }),
        async (strategies, rowCount, pool, cutFractions) => {
          const types = strategies.map((_, i) => (i % 3 === 2 ? INT4 : TEXT));
          const rows = Array.from({ length: rowCount }, (_, r) => strategies.map((_, c) => (types[c] === INT4 ? Buffer.from(String(r * 10 + c)) : pool[(r * 6 + c) % pool.length]!)));
          const stream = Buffer.concat([
            rowDescription(types),
            ...rows.map(dataRow),
            message(BE.CommandComplete, Buffer.from(`SELECT ${rowCount}\0`)),
            message(BE.ReadyForQuery, Buffer.from('I')),
          ]);
          const cuts = [...new Set(cutFractions.map((f) => Math.floor(f * stream.length)))].sort((a, b) => a - b);
          const out = parseMessages(await relay(strategies, types, stream, cuts));
          expect(out.map((m) => m.type)).toEqual([BE.RowDescription, ...rows.map(() => BE.DataRow), BE.CommandComplete, BE.ReadyForQuery]);
          out
            .filter((m) => m.type === BE.DataRow)
            .forEach((m, r) => {
              const expected = rows[r]!.map((v, c) => {
                const s = strategies[c]!;
                if (v === null) return null;
                if (s === 'keep') return v.toString('utf8');
                if (s === 'null' || types[c] !== TEXT) return null;
                if (s === 'redact') return REDACTED;
                return maskText(v.toString('utf8'), { strategy: 'hash' }, key);
              });
              expect(fields(m.payload)).toEqual(expected);
            });
        },
      ),
      { numRuns: 150 },
    );
  });

  it('cutting the stream at every single offset gives the same bytes', async () => {
    const strategies: Strategy[] = ['keep', 'redact', 'hash'];
    const types = [TEXT, TEXT, TEXT];
    const stream = Buffer.concat([
      rowDescription(types),
      dataRow([Buffer.from('a'), Buffer.from('secret'), Buffer.from('x@y.z')]),
      dataRow([null, Buffer.from(''), Buffer.from('é')]),
      message(BE.CommandComplete, Buffer.from('SELECT 2\0')),
      message(BE.ReadyForQuery, Buffer.from('I')),
    ]);
    const whole = await relay(strategies, types, stream, []);
    for (let cut = 1; cut < stream.length; cut++) {
      expect(await relay(strategies, types, stream, [cut])).toEqual(whole);
    }
    expect(whole.toString('latin1')).not.toContain('secret');
  });
});
