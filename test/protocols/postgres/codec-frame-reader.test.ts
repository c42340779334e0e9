import { describe, expect, it } from 'vitest';
import { FrameReader, type Frame } from '../../../src/protocols/postgres/codec/frame-reader.js';
import { ProtocolError } from '../../../src/protocols/postgres/codec/errors.js';
import { FE } from '../../../src/protocols/postgres/codec/message-types.js';
import { query, sslRequest, startupMessage, terminate } from '../../../src/protocols/postgres/codec/frontend-serializer.js';

const LIMITS = { maxMessageBytes: 1024, maxStartupBytes: 256 };

function frame(type: number, payload: Buffer | string): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const b = Buffer.alloc(5 + body.length);
  b[0] = type;
  b.writeInt32BE(4 + body.length, 1);
  body.copy(b, 5);
  return b;
}

function header(type: number, len: number): Buffer {
  const b = Buffer.alloc(5);
  b[0] = type;
  b.writeInt32BE(len, 1);
  return b;
}

function drainFrames(r: FrameReader): Frame[] {
  const out: Frame[] = [];
  for (let f = r.next(); f; f = r.next()) out.push(f);
  return out;
}

function protocolErrorOf(fn: () => unknown): ProtocolError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ProtocolError);
    return err as ProtocolError;
  }
  throw new Error('expected a ProtocolError');
}

describe('FrameReader', () => {
  it('returns a frame lying in one chunk as a view of that chunk', () => {
    const chunk = query('select 1');
    const r = new FrameReader(LIMITS);
    r.push(chunk);
    const f = r.next()!;
    expect(f.type).toBe(FE.Query);
    expect(f.raw.buffer).toBe(chunk.buffer);
    expect(f.raw.byteOffset).toBe(chunk.byteOffset);
    expect(f.raw.equals(chunk)).toBe(true);
    expect(f.payload.toString()).toBe('select 1\0');
    expect(r.next()).toBeUndefined();
    expect(r.buffered).toBe(0);
  });

  it('returns every frame of a chunk holding many', () => {
    const frames = Array.from({ length: 50 }, (_, i) => query(`select ${i}`));
    const r = new FrameReader(LIMITS);
    r.push(Buffer.concat([...frames, terminate()]));
    const out = drainFrames(r);
    expect(out).toHaveLength(51);
    out.slice(0, 50).forEach((f, i) => expect(f.raw.equals(frames[i])).toBe(true));
    expect(out[50].type).toBe(FE.Terminate);
    expect(out[50].payload.length).toBe(0);
  });

  it('yields the same frame for every split point of a two-chunk delivery', () => {
    const stream = Buffer.concat([query('select 42'), frame(0x53, ''), query('x'.repeat(300))]);
    const whole = new FrameReader(LIMITS);
    whole.push(stream);
    const expected = drainFrames(whole).map((f) => f.raw.toString('hex'));
    for (let cut = 0; cut <= stream.length; cut++) {
      const r = new FrameReader(LIMITS);
      r.push(stream.subarray(0, cut));
      const got = drainFrames(r);
      r.push(stream.subarray(cut));
      got.push(...drainFrames(r));
      expect(got.map((f) => f.raw.toString('hex'))).toEqual(expected);
      expect(r.buffered).toBe(0);
    }
  });

  it('assembles a frame delivered one byte at a time, pushing without draining in between', () => {
    const big = query('y'.repeat(900));
    const r = new FrameReader(LIMITS);
    for (let i = 0; i < big.length - 1; i++) {
      r.push(big.subarray(i, i + 1));
      expect(r.next()).toBeUndefined();
    }
    expect(r.buffered).toBe(big.length - 1);
    r.push(big.subarray(big.length - 1));
    expect(r.next()!.raw.equals(big)).toBe(true);
  });

  it('keeps returned frames intact while later chunks arrive', () => {
    const r = new FrameReader({ maxMessageBytes: 1 << 20, maxStartupBytes: 256 });
    const kept: Array<[Frame, Buffer]> = [];
    for (let i = 0; i < 200; i++) {
      const msg = query(`select ${'z'.repeat(i * 7)} -- ${i}`);
      // Split every message so pieces go through the append buffer, then mix in a large chunk now and then.
      r.push(msg.subarray(0, 3));
      r.push(msg.subarray(3));
      if (i % 17 === 0) r.push(Buffer.concat([frame(0x48, Buffer.alloc(5000, 1))]));
      for (let f = r.next(); f; f = r.next()) kept.push([f, Buffer.from(f.raw)]);
    }
    expect(kept.length).toBeGreaterThan(200);
    for (const [f, copy] of kept) expect(f.raw.equals(copy)).toBe(true);
  });

  it.each([0, 1, 2, 3])('refuses message length %i as malformed', (len) => {
    const r = new FrameReader(LIMITS);
    r.push(header(FE.Query, len));
    const err = protocolErrorOf(() => r.next());
    expect(err.code).toBe('frame_malformed');
    expect(err.sqlstate).toBe('08P01');
  });

  it.each([-1, -4, -2147483648])('refuses negative message length %i', (len) => {
    const r = new FrameReader(LIMITS);
    r.push(header(FE.Query, len));
    expect(protocolErrorOf(() => r.next()).code).toBe('frame_malformed');
  });

  it.each([1025, 0x7fffffff])('refuses length %i above the limit before it arrives', (len) => {
    const r = new FrameReader(LIMITS);
    r.push(header(FE.Query, len));
    const err = protocolErrorOf(() => r.next());
    expect(err.code).toBe('frame_too_large');
    expect(err.sqlstate).toBe('54000');
  });

  it('accepts a message exactly at the limit', () => {
    const r = new FrameReader(LIMITS);
    const msg = frame(FE.CopyData, Buffer.alloc(1020, 7));
    r.push(msg);
    expect(r.next()!.payload.length).toBe(1020);
  });

  it('reads a length whose bytes arrive in separate chunks', () => {
    const r = new FrameReader(LIMITS);
    const h = header(FE.Query, 0x7fffffff);
    for (const b of h) r.push(Buffer.from([b]));
    expect(protocolErrorOf(() => r.next()).code).toBe('frame_too_large');
  });

  it('waits on a truncated frame and reports what it holds', () => {
    const r = new FrameReader(LIMITS);
    const msg = query('select 1');
    r.push(msg.subarray(0, 4));
    expect(r.next()).toBeUndefined();
    r.push(msg.subarray(4, 9));
    expect(r.next()).toBeUndefined();
    expect(r.buffered).toBe(9);
  });

  it('reads startup packets, then typed messages from the same stream', () => {
    const r = new FrameReader(LIMITS);
    const startup = startupMessage({ user: 'read', database: 'orders' });
    r.push(Buffer.concat([sslRequest(), startup.subarray(0, 6)]));
    expect(r.nextStartup()!.readInt32BE(0)).toBe(80877103);
    // What arrived after SSLRequest is visible, so a listener can refuse plaintext smuggled before TLS.
    expect(r.buffered).toBe(6);
    r.push(Buffer.concat([startup.subarray(6), query('select 1')]));
    const payload = r.nextStartup()!;
    expect(payload.length).toBe(startup.length - 4);
    expect(r.next()!.type).toBe(FE.Query);
  });

  it.each([0, 3, -8])('refuses startup length %i', (len) => {
    const r = new FrameReader(LIMITS);
    const b = Buffer.alloc(8);
    b.writeInt32BE(len, 0);
    r.push(b);
    expect(protocolErrorOf(() => r.nextStartup()).code).toBe('startup_malformed');
  });

  it('refuses a startup packet above maxStartupBytes', () => {
    const r = new FrameReader(LIMITS);
    const b = Buffer.alloc(4);
    b.writeInt32BE(257, 0);
    r.push(b);
    expect(protocolErrorOf(() => r.nextStartup()).code).toBe('frame_too_large');
  });

  it('drains what is left for another reader', () => {
    const r = new FrameReader(LIMITS);
    const a = query('a');
    const b = query('b');
    r.push(Buffer.concat([a, b.subarray(0, 3)]));
    r.push(b.subarray(3, 5));
    expect(r.next()!.raw.equals(a)).toBe(true);
    expect(r.drain().equals(b.subarray(0, 5))).toBe(true);
    expect(r.buffered).toBe(0);
    expect(r.drain().length).toBe(0);
  });
});
