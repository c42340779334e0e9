import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { serialize } from 'pg-protocol';
import { FrameReader, type Frame } from '../../../src/protocols/postgres/codec/frame-reader.js';
import { ProtocolError } from '../../../src/protocols/postgres/codec/errors.js';
import * as fe from '../../../src/protocols/postgres/codec/frontend-parser.js';
import * as be from '../../../src/protocols/postgres/codec/backend-parser.js';
import * as fes from '../../../src/protocols/postgres/codec/frontend-serializer.js';
import * as bes from '../../../src/protocols/postgres/codec/backend-serializer.js';

const LIMITS = { maxMessageBytes: 4096, maxStartupBytes: 512 };
const RUNS = { numRuns: 500 };

/** Cuts `data` at the given positions (taken modulo its length). */
function chunksOf(data: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => (data.length ? c % (data.length + 1) : 0)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of points) {
    out.push(data.subarray(prev, p));
    prev = p;
  }
  out.push(data.subarray(prev));
  return out;
}

/** Feeds chunks, reading after each; returns frames and the error that stopped it, if any. */
function readAll(chunks: Buffer[], startupFirst = false): { frames: Frame[]; startup: Buffer[]; error?: unknown } {
  const r = new FrameReader(LIMITS);
  const frames: Frame[] = [];
  const startup: Buffer[] = [];
  let inStartup = startupFirst;
  try {
    for (const chunk of chunks) {
      r.push(chunk);
      for (;;) {
        if (inStartup) {
          const p = r.nextStartup();
          if (!p) break;
          startup.push(Buffer.from(p));
          inStartup = false;
          continue;
        }
        const f = r.next();
        if (!f) break;
        expect(f.raw.length).toBe(f.raw.readInt32BE(1) + 1);
        expect(f.raw[0]).toBe(f.type);
        expect(f.payload.equals(f.raw.subarray(5))).toBe(true);
        frames.push(f);
      }
    }
  } catch (error) {
    return { frames, startup, error };
  }
  return { frames, startup };
}

const bytes = (max = 600) => fc.uint8Array({ maxLength: max }).map((a) => Buffer.from(a));
const cuts = fc.array(fc.nat(5000), { maxLength: 12 });
const text = fc.string({ unit: 'binary', maxLength: 40 }).filter((s) => !s.includes('\0'));

const validFrame = fc
  .record({ type: fc.integer({ min: 0x20, max: 0x7e }), payload: bytes(300) })
  .map(({ type, payload }) => {
    const b = Buffer.alloc(5 + payload.length);
    b[0] = type;
    b.writeInt32BE(4 + payload.length, 1);
    payload.copy(b, 5);
    return b;
  });

describe('FrameReader under arbitrary input', () => {
  it('only ever yields well-formed frames or a ProtocolError from arbitrary bytes', () => {
    fc.assert(
      fc.property(bytes(2000), cuts, fc.boolean(), (data, cut, startupFirst) => {
        const { error } = readAll(chunksOf(data, cut), startupFirst);
        if (error !== undefined) expect(error).toBeInstanceOf(ProtocolError);
      }),
      RUNS,
    );
  });

  it('yields the same frames for every chunking of a valid stream', () => {
    fc.assert(
      fc.property(fc.array(validFrame, { maxLength: 20 }), cuts, (frames, cut) => {
        const stream = Buffer.concat(frames);
        const got = readAll(chunksOf(stream, cut));
        expect(got.error).toBeUndefined();
        expect(got.frames.map((f) => f.raw.toString('hex'))).toEqual(frames.map((f) => f.toString('hex')));
      }),
      RUNS,
    );
  });

  it('yields the same startup packet and frames for every chunking', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(text, text), { maxLength: 6 }), fc.array(validFrame, { maxLength: 5 }), cuts, (params, frames, cut) => {
        const pairs = params.filter(([k]) => k !== '');
        const startup = fes.startupMessage(Object.fromEntries(pairs));
        fc.pre(startup.length <= LIMITS.maxStartupBytes);
        const got = readAll(chunksOf(Buffer.concat([startup, ...frames]), cut), true);
        expect(got.error).toBeUndefined();
        expect(got.startup).toHaveLength(1);
        expect(got.startup[0].equals(startup.subarray(4))).toBe(true);
        expect(got.frames.map((f) => f.raw.toString('hex'))).toEqual(frames.map((f) => f.toString('hex')));
      }),
      RUNS,
    );
  });

  it('refuses any length field below 4, negative or above the limit, however it is split', () => {
    const badLength = fc.oneof(fc.integer({ min: -(2 ** 31), max: 3 }), fc.integer({ min: LIMITS.maxMessageBytes + 1, max: 2 ** 31 - 1 }));
    fc.assert(
      fc.property(fc.array(validFrame, { maxLength: 3 }), badLength, bytes(20), cuts, (good, len, tail, cut) => {
        const bad = Buffer.alloc(5);
        bad[0] = 0x51;
        bad.writeInt32BE(len, 1);
        const got = readAll(chunksOf(Buffer.concat([...good, bad, tail]), cut));
        expect(got.error).toBeInstanceOf(ProtocolError);
        expect((got.error as ProtocolError).code).toBe(len < 4 ? 'frame_malformed' : 'frame_too_large');
        expect(got.frames).toHaveLength(good.length);
      }),
      RUNS,
    );
  });

  it('holds a truncated valid frame back without error', () => {
    fc.assert(
      fc.property(validFrame, fc.nat(), (frame, n) => {
        const cut = n % frame.length;
        const got = readAll([frame.subarray(0, cut)]);
        expect(got.error).toBeUndefined();
        expect(got.frames).toHaveLength(0);
      }),
      RUNS,
    );
  });
});

describe('parsers under arbitrary input', () => {
  const parsers: Array<[string, (p: Buffer) => unknown]> = [
    ['parseStartupPacket', fe.parseStartupPacket],
    ['parsePassword', fe.parsePassword],
    ['parseQuery', fe.parseQuery],
    ['parseParse', fe.parseParse],
    ['parseBind', fe.parseBind],
    ['parseExecute', fe.parseExecute],
    ['parseDescribeOrClose', fe.parseDescribeOrClose],
    ['parseAuthentication', be.parseAuthentication],
    ['parseErrorFields', be.parseErrorFields],
    ['parseCommandComplete', be.parseCommandComplete],
    ['parseReadyForQuery', be.parseReadyForQuery],
    ['parseParameterStatus', be.parseParameterStatus],
    ['parseBackendKeyData', be.parseBackendKeyData],
    ['parseRowDescription', be.parseRowDescription],
  ];

  const onlyProtocolErrors = (parse: (p: Buffer) => unknown, payload: Buffer): void => {
    try {
      parse(payload);
    } catch (err) {
      expect(err).toBeInstanceOf(ProtocolError);
    }
  };

  it.each(parsers)('%s returns a value or throws ProtocolError on random bytes', (_name, parse) => {
    fc.assert(
      fc.property(bytes(200), (payload) => onlyProtocolErrors(parse, payload)),
      RUNS,
    );
  });

  // Structured garbage reaches deeper than random bytes: valid messages with bytes flipped, cut or appended.
  const seeds: Array<[(p: Buffer) => unknown, Buffer]> = [
    [fe.parseStartupPacket, fes.startupMessage({ user: 'read', database: 'orders' }).subarray(4)],
    [fe.parseStartupPacket, fes.cancelRequest(1, 2).subarray(4)],
    [fe.parseParse, serialize.parse({ name: 's', text: 'select $1, $2', types: [23, 25] }).subarray(5)],
    [fe.parseBind, serialize.bind({ portal: 'p', statement: 's', values: ['1', null, Buffer.from('ab')], binary: true }).subarray(5)],
    [fe.parseExecute, serialize.execute({ portal: 'p', rows: 3 }).subarray(5)],
    [fe.parseDescribeOrClose, serialize.describe({ type: 'S', name: 's' }).subarray(5)],
    [be.parseErrorFields, bes.errorResponse({ severity: 'ERROR', code: '42501', message: 'm', detail: 'd' }).subarray(5)],
    [be.parseAuthentication, Buffer.from('\0\0\0\x0aSCRAM-SHA-256\0\0', 'latin1')],
  ];

  it('returns a value or throws ProtocolError on mutated valid messages', () => {
    const mutation = fc.record({
      seed: fc.nat(seeds.length - 1),
      flips: fc.array(fc.tuple(fc.nat(), fc.nat(255)), { maxLength: 4 }),
      cut: fc.option(fc.nat()),
      extra: bytes(8),
    });
    fc.assert(
      fc.property(mutation, ({ seed, flips, cut, extra }) => {
        const [parse, base] = seeds[seed];
        const b = Buffer.from(base);
        for (const [pos, val] of flips) b[pos % b.length] = val;
        const mutated = Buffer.concat([cut === null ? b : b.subarray(0, cut % (b.length + 1)), extra]);
        onlyProtocolErrors(parse, mutated);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('serializer → parser round trips', () => {
  it('StartupMessage', () => {
    fc.assert(
      fc.property(fc.dictionary(text.filter((k) => k !== ''), text, { maxKeys: 8 }), (params) => {
        const p = fe.parseStartupPacket(fes.startupMessage(params).subarray(4));
        expect(p).toEqual({ kind: 'startup', protocol: 196608, params: Object.entries(params) });
      }),
      RUNS,
    );
  });

  it('CancelRequest and BackendKeyData keep all 32 bits', () => {
    fc.assert(
      fc.property(fc.nat(2 ** 32 - 1), fc.nat(2 ** 32 - 1), (pid, secret) => {
        expect(fe.parseStartupPacket(fes.cancelRequest(pid, secret).subarray(4))).toEqual({ kind: 'cancel', pid, secret });
        expect(be.parseBackendKeyData(bes.backendKeyData(pid, secret).subarray(5))).toEqual({ pid, secret });
      }),
      RUNS,
    );
  });

  it('Query, PasswordMessage, CommandComplete, ParameterStatus', () => {
    fc.assert(
      fc.property(text, text, (a, b) => {
        expect(fe.parseQuery(fes.query(a).subarray(5))).toBe(a);
        expect(fe.parsePassword(fes.passwordMessage(a).subarray(5))).toBe(a);
        expect(be.parseCommandComplete(bes.commandComplete(a).subarray(5))).toBe(a);
        expect(be.parseParameterStatus(bes.parameterStatus(a, b).subarray(5))).toEqual([a, b]);
      }),
      RUNS,
    );
  });

  it('ErrorResponse and NoticeResponse', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('ERROR' as const, 'FATAL' as const),
        text,
        fc.option(text, { nil: undefined }),
        fc.option(text, { nil: undefined }),
        (severity, message, detail, hint) => {
          const f = be.parseErrorFields(bes.errorResponse({ severity, code: '42501', message, detail, hint }).subarray(5));
          expect(f).toEqual({ S: severity, V: severity, C: '42501', M: message, ...(detail !== undefined && { D: detail }), ...(hint !== undefined && { H: hint }) });
          const n = be.parseErrorFields(bes.noticeResponse({ severity: 'NOTICE', code: '00000', message }).subarray(5));
          expect(n.M).toBe(message);
        },
      ),
      RUNS,
    );
  });

  it('Bind and Parse as pg serializes them', () => {
    const value = fc.oneof(fc.constant(null), text, bytes(40));
    fc.assert(
      fc.property(text, text, fc.array(value, { maxLength: 10 }), fc.array(fc.nat(2 ** 32 - 1), { maxLength: 10 }), (portal, statement, values, types) => {
        const b = fe.parseBind(serialize.bind({ portal, statement, values, binary: true }).subarray(5));
        expect(b.portal).toBe(portal);
        expect(b.statement).toBe(statement);
        expect(b.params).toHaveLength(values.length);
        values.forEach((v, i) => {
          if (v === null) expect(b.params[i]).toBeNull();
          else expect(b.params[i]!.equals(Buffer.isBuffer(v) ? v : Buffer.from(v))).toBe(true);
        });
        const p = fe.parseParse(serialize.parse({ name: statement, text: portal, types }).subarray(5));
        expect(p).toEqual({ name: statement, query: portal, paramTypes: types });
      }),
      RUNS,
    );
  });
});
