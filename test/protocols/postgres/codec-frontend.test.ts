import { describe, expect, it } from 'vitest';
import { serialize } from 'pg-protocol';
import { FrameReader } from '../../../src/protocols/postgres/codec/frame-reader.js';
import { ProtocolError } from '../../../src/protocols/postgres/codec/errors.js';
import {
  parseBind,
  parseDescribeOrClose,
  parseExecute,
  parseParse,
  parsePassword,
  parseQuery,
  parseStartupPacket,
} from '../../../src/protocols/postgres/codec/frontend-parser.js';
import {
  cancelRequest,
  passwordMessage,
  query,
  sslRequest,
  startupMessage,
} from '../../../src/protocols/postgres/codec/frontend-serializer.js';

/** The payload of a single typed message (skips type byte and length). */
function payloadOf(msg: Buffer): Buffer {
  return msg.subarray(5);
}

function startupPayload(msg: Buffer): Buffer {
  return msg.subarray(4);
}

function int32(...values: number[]): Buffer {
  const b = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => b.writeInt32BE(v, i * 4));
  return b;
}

function expectProtocolError(fn: () => unknown, code?: string): ProtocolError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ProtocolError);
    if (code) expect((err as ProtocolError).code).toBe(code);
    return err as ProtocolError;
  }
  throw new Error('expected a ProtocolError');
}

describe('parseStartupPacket', () => {
  it('reads a StartupMessage with its parameters in order', () => {
    const p = parseStartupPacket(startupPayload(startupMessage({ user: 'read', database: 'orders', application_name: 'psql' })));
    expect(p).toEqual({
      kind: 'startup',
      protocol: 196608,
      params: [
        ['user', 'read'],
        ['database', 'orders'],
        ['application_name', 'psql'],
      ],
    });
  });

  it('reads what pg sends', () => {
    const p = parseStartupPacket(startupPayload(serialize.startup({ user: 'write', database: 'orders', client_encoding: 'UTF8' })));
    expect(p.kind).toBe('startup');
    if (p.kind === 'startup') expect(p.params).toContainEqual(['user', 'write']);
  });

  it('keeps duplicate keys so the caller can refuse them', () => {
    const raw = Buffer.concat([int32(196608), Buffer.from('user\0read\0user\0admin\0\0')]);
    const p = parseStartupPacket(raw);
    expect(p.kind === 'startup' && p.params).toEqual([
      ['user', 'read'],
      ['user', 'admin'],
    ]);
  });

  it('accepts empty values and no parameters at all', () => {
    expect(parseStartupPacket(Buffer.concat([int32(196608), Buffer.from('options\0\0\0')]))).toMatchObject({ params: [['options', '']] });
    expect(parseStartupPacket(Buffer.concat([int32(196608), Buffer.from('\0')]))).toMatchObject({ params: [] });
  });

  it('reads SSLRequest, GSSENCRequest and CancelRequest', () => {
    expect(parseStartupPacket(startupPayload(sslRequest()))).toEqual({ kind: 'ssl' });
    expect(parseStartupPacket(int32(80877104))).toEqual({ kind: 'gssenc' });
    expect(parseStartupPacket(startupPayload(cancelRequest(4242, 0xdeadbeef)))).toEqual({ kind: 'cancel', pid: 4242, secret: 0xdeadbeef });
    expect(parseStartupPacket(startupPayload(serialize.cancel(77, -5)))).toEqual({ kind: 'cancel', pid: 77, secret: 0xfffffffb });
  });

  it.each([
    ['empty', Buffer.alloc(0)],
    ['short code', Buffer.from([0, 3, 0])],
    ['SSLRequest with trailing bytes', Buffer.concat([int32(80877103), Buffer.from([0])])],
    ['GSSENCRequest with trailing bytes', Buffer.concat([int32(80877104, 1)])],
    ['CancelRequest too short', int32(80877102, 1)],
    ['CancelRequest too long', int32(80877102, 1, 2, 3)],
    ['no final NUL', Buffer.concat([int32(196608), Buffer.from('user\0read\0')])],
    ['key without value', Buffer.concat([int32(196608), Buffer.from('user\0')])],
    ['unterminated key', Buffer.concat([int32(196608), Buffer.from('user')])],
    ['bytes after the final NUL', Buffer.concat([int32(196608), Buffer.from('user\0read\0\0junk')])],
  ])('refuses %s as startup_malformed', (_name, payload) => {
    expectProtocolError(() => parseStartupPacket(payload), 'startup_malformed');
  });

  it.each([
    ['2.0', 0x00020000],
    ['3.2', 0x00030002],
    ['4.0', 0x00040000],
    ['1234.5679 (garbage)', 80877105],
  ])('refuses protocol %s as unsupported', (_name, code) => {
    const err = expectProtocolError(() => parseStartupPacket(Buffer.concat([int32(code), Buffer.from('\0')])), 'protocol_unsupported');
    expect(err.sqlstate).toBe('0A000');
  });

  it('refuses invalid UTF-8 in parameters', () => {
    const raw = Buffer.concat([int32(196608), Buffer.from('user\0'), Buffer.from([0xc3, 0x28, 0]), Buffer.from('\0')]);
    expect(expectProtocolError(() => parseStartupPacket(raw), 'text_malformed').sqlstate).toBe('22021');
  });

  it('does not echo the packet in its errors', () => {
    const raw = Buffer.concat([int32(196608), Buffer.from('password\0hunter2-secret')]);
    expect(expectProtocolError(() => parseStartupPacket(raw)).message).not.toContain('hunter2');
  });
});

describe('simple-protocol and password messages', () => {
  it('round-trips Query and PasswordMessage, including non-ASCII text', () => {
    expect(parseQuery(payloadOf(query('select \'zürich ✓\'')))).toBe("select 'zürich ✓'");
    expect(parseQuery(payloadOf(serialize.query('select 1')))).toBe('select 1');
    expect(parsePassword(payloadOf(passwordMessage('eyJhbGciOi.token')))).toBe('eyJhbGciOi.token');
    expect(parsePassword(payloadOf(serialize.password('pw')))).toBe('pw');
  });

  it.each([
    ['no NUL', Buffer.from('select 1')],
    ['NUL inside then more text', Buffer.from('select 1\0; drop table x\0')],
    ['empty payload', Buffer.alloc(0)],
  ])('refuses a Query with %s', (_name, payload) => {
    expectProtocolError(() => parseQuery(payload), 'frame_malformed');
  });

  it('refuses invalid UTF-8 in a Query so the guard never judges different text than the backend runs', () => {
    expectProtocolError(() => parseQuery(Buffer.from([0x73, 0xff, 0xfe, 0])), 'text_malformed');
  });

  it('keeps a byte order mark as part of the text', () => {
    expect(parseQuery(Buffer.from('\uFEFFselect 1\0'))).toBe('\uFEFFselect 1');
  });

  it('does not echo a malformed password in its error', () => {
    expect(expectProtocolError(() => parsePassword(Buffer.from('secret-token-value'))).message).not.toContain('secret-token');
  });
});

describe('extended-protocol messages', () => {
  it('reads Parse', () => {
    expect(parseParse(payloadOf(serialize.parse({ name: 's1', text: 'select $1::int, $2', types: [23, 0] })))).toEqual({
      name: 's1',
      query: 'select $1::int, $2',
      paramTypes: [23, 0],
    });
    expect(parseParse(payloadOf(serialize.parse({ text: 'select 1' })))).toEqual({ name: '', query: 'select 1', paramTypes: [] });
  });

  it('reads type OIDs above 2^31 as unsigned', () => {
    const p = Buffer.concat([Buffer.from('\0q\0'), Buffer.from([0, 1]), int32(-1)]);
    expect(parseParse(p).paramTypes).toEqual([0xffffffff]);
  });

  it('reads Bind with text, NULL and binary values', () => {
    const msg = serialize.bind({ portal: 'p1', statement: 's1', values: ['42', null, Buffer.from([1, 2, 3])], binary: true });
    const b = parseBind(payloadOf(msg));
    expect(b.portal).toBe('p1');
    expect(b.statement).toBe('s1');
    expect(b.paramFormats).toEqual([0, 0, 1]);
    expect(b.params.map((v) => (v === null ? null : v.toString('hex')))).toEqual(['3432', null, '010203']);
    expect(b.resultFormats).toEqual([1]);
  });

  it('reads Bind values as views of the payload', () => {
    const payload = payloadOf(serialize.bind({ values: ['abc'] }));
    const v = parseBind(payload).params[0]!;
    expect(v.buffer).toBe(payload.buffer);
  });

  it('reads Execute, Describe and Close', () => {
    expect(parseExecute(payloadOf(serialize.execute({ portal: 'p1', rows: 100 })))).toEqual({ portal: 'p1', maxRows: 100 });
    expect(parseExecute(payloadOf(serialize.execute()))).toEqual({ portal: '', maxRows: 0 });
    expect(parseDescribeOrClose(payloadOf(serialize.describe({ type: 'S', name: 's1' })))).toEqual({ target: 'S', name: 's1' });
    expect(parseDescribeOrClose(payloadOf(serialize.close({ type: 'P', name: '' })))).toEqual({ target: 'P', name: '' });
  });

  it.each([
    ['Parse without query', () => parseParse(Buffer.from('s1\0'))],
    ['Parse with more types declared than sent', () => parseParse(Buffer.concat([Buffer.from('\0q\0'), Buffer.from([0, 3]), int32(23)]))],
    ['Parse with trailing bytes', () => parseParse(Buffer.concat([Buffer.from('\0q\0'), Buffer.from([0, 0, 9])]))],
    ['Bind with parameter length -2', () => parseBind(Buffer.concat([Buffer.from('\0\0'), Buffer.from([0, 0, 0, 1]), int32(-2), Buffer.from([0, 0])]))],
    ['Bind with a value longer than the message', () => parseBind(Buffer.concat([Buffer.from('\0\0'), Buffer.from([0, 0, 0, 1]), int32(100), Buffer.from('ab'), Buffer.from([0, 0])]))],
    ['Bind claiming 65535 parameters', () => parseBind(Buffer.concat([Buffer.from('\0\0'), Buffer.from([0, 0, 0xff, 0xff]), int32(0)]))],
    ['Bind without result formats', () => parseBind(Buffer.concat([Buffer.from('\0\0'), Buffer.from([0, 0, 0, 0])]))],
    ['Bind with trailing bytes', () => parseBind(Buffer.concat([Buffer.from('\0\0'), Buffer.from([0, 0, 0, 0, 0, 0, 1])]))],
    ['Execute without maxRows', () => parseExecute(Buffer.from('p\0'))],
    ['Execute with trailing bytes', () => parseExecute(Buffer.concat([Buffer.from('p\0'), int32(0), Buffer.from([1])]))],
    ['Describe with target X', () => parseDescribeOrClose(Buffer.from('Xname\0'))],
    ['Describe without name', () => parseDescribeOrClose(Buffer.from('S'))],
    ['Close empty', () => parseDescribeOrClose(Buffer.alloc(0))],
  ])('refuses %s', (_name, fn) => {
    expectProtocolError(fn, 'frame_malformed');
  });

  it('refuses every truncation of valid messages', () => {
    const messages: Array<[Buffer, (p: Buffer) => unknown]> = [
      [serialize.parse({ name: 's', text: 'select $1', types: [23] }), parseParse],
      [serialize.bind({ portal: 'p', statement: 's', values: ['1', null, Buffer.from('xyz')], binary: true }), parseBind],
      [serialize.execute({ portal: 'p', rows: 5 }), parseExecute],
      [serialize.describe({ type: 'P', name: 'p' }), parseDescribeOrClose],
      [serialize.query('select 1'), parseQuery],
    ];
    for (const [msg, parse] of messages) {
      const payload = payloadOf(msg);
      expect(() => parse(payload)).not.toThrow();
      for (let n = 0; n < payload.length; n++) expectProtocolError(() => parse(payload.subarray(0, n)));
    }
  });

  it('parses the frames of a whole pg extended-protocol exchange', () => {
    const stream = Buffer.concat([
      serialize.parse({ name: '', text: 'select * from customers where id = $1' }),
      serialize.bind({ values: ['7'] }),
      serialize.describe({ type: 'P' }),
      serialize.execute(),
      serialize.sync(),
    ]);
    const r = new FrameReader({ maxMessageBytes: 1 << 20, maxStartupBytes: 10_000 });
    r.push(stream);
    const types: string[] = [];
    for (let f = r.next(); f; f = r.next()) types.push(String.fromCharCode(f.type));
    expect(types).toEqual(['P', 'B', 'D', 'E', 'S']);
  });
});

describe('frontend serializer', () => {
  it('refuses NUL inside values so nothing can be smuggled as a further parameter or statement', () => {
    expectProtocolError(() => startupMessage({ application_name: 'x\0options\0-c role=admin' }), 'value_contains_nul');
    expectProtocolError(() => query('select 1\0drop table t'), 'value_contains_nul');
    expectProtocolError(() => passwordMessage('a\0b'), 'value_contains_nul');
    expectProtocolError(() => startupMessage({ '': 'x' }), 'value_invalid');
  });

  it('builds the fixed packets byte for byte like pg', () => {
    expect(sslRequest().equals(serialize.requestSsl())).toBe(true);
    expect(cancelRequest(123, 456).equals(serialize.cancel(123, 456))).toBe(true);
    expect(query('select 1').equals(serialize.query('select 1'))).toBe(true);
    expect(passwordMessage('pw').equals(serialize.password('pw'))).toBe(true);
  });
});
