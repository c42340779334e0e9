import fc from 'fast-check';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { FrameWriter } from '../../src/protocols/postgres/codec/frame-writer.js';
import { cancelRequest, passwordMessage, query, sslRequest, startupMessage } from '../../src/protocols/postgres/codec/frontend-serializer.js';
import { AUTH, REQUEST_CODE } from '../../src/protocols/postgres/codec/message-types.js';
import { pgClient, psql, runClient } from '../support/clients.js';
import { startGateway, type TestGateway } from '../support/gateway.js';
import { CLOSED, RawClient, authCode, errorFields, openSession, type BackendMessage } from '../support/raw-client.js';

/** Below the 64 MiB default so the limit is cheap to cross; ordinary statements stay far below it. */
const MAX_MESSAGE_BYTES = 1_048_576;

let t: TestGateway;
let admin: pg.Client;
let token: string;

beforeAll(async () => {
  t = await startGateway((c) => (c.server.postgres.max_message_bytes = MAX_MESSAGE_BYTES));
  token = await t.token('mallory', ['dba']);
  admin = new pg.Client({ host: t.pg.host, port: t.pg.port, user: t.pg.superuser.user, password: t.pg.superuser.password, database: t.pg.database });
  await admin.connect();
});
afterAll(async () => {
  await admin?.end();
  await t?.stop();
});

function int32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
}

/** An untyped startup-phase packet whose length field says `len` (default: the true length). */
function packet(body: Buffer, len = body.length + 4): Buffer {
  return Buffer.concat([int32(len), body]);
}

/** A typed message whose length field says `len` (default: the true length). */
function frame(type: string, body: Buffer, len = body.length + 4): Buffer {
  return Buffer.concat([Buffer.from(type, 'latin1'), int32(len), body]);
}

/** Startup key/value pairs in wire form, each followed by NUL, without the final terminating NUL. */
function pairs(...kv: string[]): Buffer {
  return Buffer.concat(kv.map((s) => Buffer.from(`${s}\0`, 'utf8')));
}

const PROTOCOL_3 = int32(REQUEST_CODE.Protocol3);
const GSSENC_REQUEST = packet(int32(REQUEST_CODE.GSSENC));

/** Sends `bytes` on a fresh connection (after TLS when asked) and returns everything the gateway answers until it closes. */
async function exchange(bytes: Buffer, opts: { gw?: TestGateway; tls?: boolean; endAfter?: boolean } = {}): Promise<BackendMessage[]> {
  const gw = opts.gw ?? t;
  const c = await RawClient.connect(gw.host, gw.port);
  try {
    if (opts.tls) await c.startTls();
    c.write(bytes);
    if (opts.endAfter) c.end();
    return await c.untilClosed();
  } finally {
    c.destroy();
  }
}

/** The one FATAL ErrorResponse a refused connection gets before the gateway closes it. */
function expectFatal(messages: BackendMessage[], sqlstate: string, message: RegExp | string): Record<string, string> {
  expect(messages.map((m) => m.type)).toEqual(['E']);
  const f = errorFields(messages[0]);
  expect(f.S).toBe('FATAL');
  expect(f.C).toBe(sqlstate);
  if (typeof message === 'string') expect(f.M).toContain(message);
  else expect(f.M).toMatch(message);
  return f;
}

/** A normal node-postgres session through the gateway still works. */
async function servesNormally(gw: TestGateway = t): Promise<void> {
  const c = await pgClient(gw, 'read', await gw.token('alice', ['dba']));
  try {
    const r = await c.query('select count(*)::int as n from customers');
    expect(r.rows).toEqual([{ n: 100 }]);
  } finally {
    await c.end();
  }
}

async function backendsFor(app: string): Promise<number> {
  const r = await admin.query<{ n: number }>('select count(*)::int as n from pg_stat_activity where application_name = $1', [app]);
  return r.rows[0].n;
}

/** The gateway has forgotten every session of `app` and the backend has no connection left for it. */
async function expectBackendReleased(app: string): Promise<void> {
  await vi.waitFor(
    async () => {
      expect(t.gw.registry.list().filter((s) => s.applicationName === app)).toEqual([]);
      expect(await backendsFor(app)).toBe(0);
    },
    { timeout: 5000, interval: 50 },
  );
}

function startupParams(app: string, extra: Record<string, string> = {}): Record<string, string> {
  return { user: 'read', database: 'orders', application_name: app, ...extra };
}

describe('malformed startup packets', () => {
  const goodBody = Buffer.concat([PROTOCOL_3, pairs('user', 'read', 'database', 'orders'), Buffer.from([0])]);
  const cases: Array<[string, Buffer, string, RegExp | string]> = [
    ['length 0', Buffer.concat([int32(0), goodBody]), '08P01', 'invalid startup packet length 0'],
    ['length 1', Buffer.concat([int32(1), goodBody]), '08P01', 'invalid startup packet length 1'],
    ['length 2', Buffer.concat([int32(2), goodBody]), '08P01', 'invalid startup packet length 2'],
    ['length 3', Buffer.concat([int32(3), goodBody]), '08P01', 'invalid startup packet length 3'],
    ['length 4 (no protocol code)', int32(4), '08P01', /malformed startup message: truncated/],
    ['length 7 (half a protocol code)', packet(Buffer.from([0, 3, 0])), '08P01', /malformed startup message: truncated/],
    ['a negative length', Buffer.concat([int32(-8), goodBody]), '08P01', 'invalid startup packet length -8'],
    ['the largest negative length', Buffer.concat([int32(-(2 ** 31)), goodBody]), '08P01', 'invalid startup packet length -2147483648'],
    ['a length over max_startup_bytes', Buffer.concat([int32(10_001), goodBody]), '54000', 'startup packet of 10001 bytes exceeds the limit of 10000 bytes'],
    ['a length of 2 GiB', Buffer.concat([int32(2 ** 31 - 1), goodBody]), '54000', 'exceeds the limit of 10000 bytes'],
    ['a garbage protocol version', packet(Buffer.concat([int32(0x12345678), pairs('user', 'read'), Buffer.from([0])])), '0A000', 'unsupported frontend protocol 4660.22136'],
    ['protocol 2.0', packet(Buffer.concat([int32(0x20000), pairs('user', 'read'), Buffer.from([0])])), '0A000', 'unsupported frontend protocol 2.0'],
    ['protocol 3.2', packet(Buffer.concat([int32(0x30002), pairs('user', 'read'), Buffer.from([0])])), '0A000', 'unsupported frontend protocol 3.2'],
    ['an unterminated value', packet(Buffer.concat([PROTOCOL_3, pairs('user', 'read'), Buffer.from('database\0orders')])), '08P01', /not NUL-terminated/],
    ['an unterminated key', packet(Buffer.concat([PROTOCOL_3, pairs('user', 'read'), Buffer.from('database')])), '08P01', /not NUL-terminated/],
    ['no final NUL', packet(Buffer.concat([PROTOCOL_3, pairs('user', 'read', 'database', 'orders')])), '08P01', /not NUL-terminated/],
    ['bytes after the final NUL', packet(Buffer.concat([goodBody, Buffer.from('junk')])), '08P01', /unexpected trailing bytes/],
    ['a key that is not UTF-8', packet(Buffer.concat([PROTOCOL_3, Buffer.from([0x75, 0xff, 0xfe, 0]), pairs('read'), Buffer.from([0])])), '22021', 'invalid UTF-8'],
    ['a CancelRequest with a short body', packet(Buffer.concat([int32(REQUEST_CODE.Cancel), int32(1)])), '08P01', /malformed startup message/],
    ['an SSLRequest with trailing bytes inside its length', packet(Buffer.concat([int32(REQUEST_CODE.SSL), int32(0)])), '08P01', '4 unexpected trailing bytes'],
  ];

  it.each(cases)('refuses %s with a FATAL ErrorResponse and closes', async (_name, bytes, sqlstate, message) => {
    expectFatal(await exchange(bytes), sqlstate, message);
  });

  it('refuses the same packets inside TLS', async () => {
    expectFatal(await exchange(Buffer.concat([int32(2), goodBody]), { tls: true }), '08P01', 'invalid startup packet length 2');
    expectFatal(await exchange(Buffer.concat([int32(1 << 20), goodBody]), { tls: true }), '54000', 'exceeds the limit');
  });

  it('closes quietly when the client sends part of a packet and leaves', async () => {
    const partial = packet(goodBody).subarray(0, 12);
    const answered = await exchange(partial, { endAfter: true });
    // The client is gone: nothing but a possible parting ErrorResponse may be sent, and the connection ends.
    expect(answered.every((m) => m.type === 'E')).toBe(true);
    const threeBytes = await exchange(Buffer.from([0, 0, 0]), { endAfter: true });
    expect(threeBytes.every((m) => m.type === 'E')).toBe(true);
    await servesNormally();
  });

  it('keeps serving psql and pg after all of the above', async () => {
    await servesNormally();
    const r = await psql(t, t.url('read'), token, ['-c', 'select 42']);
    expect(r.stdout.trim()).toBe('42');
  });
});

describe('refused startup parameters', () => {
  const cases: Array<[string, Buffer, string, string]> = [
    ['options', startupMessage({ user: 'read', database: 'orders', options: '-c search_path=evil' }), '08P01', '"options" startup parameter is not allowed'],
    ['replication', startupMessage({ user: 'read', database: 'orders', replication: 'database' }), '08P01', 'replication connections are not supported'],
    ['a duplicate user', packet(Buffer.concat([PROTOCOL_3, pairs('user', 'read', 'database', 'orders', 'user', 'admin'), Buffer.from([0])])), '08P01', 'startup parameter "user" is given twice'],
    ['a duplicate database', packet(Buffer.concat([PROTOCOL_3, pairs('database', 'orders', 'user', 'read', 'database', 'other'), Buffer.from([0])])), '08P01', 'startup parameter "database" is given twice'],
    ['an unknown parameter', startupMessage({ user: 'read', database: 'orders', search_path: 'evil' }), '08P01', 'startup parameter "search_path" is not allowed'],
    ['session_authorization', startupMessage({ user: 'read', database: 'orders', session_authorization: 'postgres' }), '08P01', 'startup parameter "session_authorization" is not allowed'],
    ['a protocol extension option', startupMessage({ user: 'read', database: 'orders', '_pq_.compression': 'on' }), '08P01', 'startup parameter "_pq_.compression" is not allowed'],
    ['a missing database', startupMessage({ user: 'read' }), '08P01', 'no database given'],
    ['an empty database', startupMessage({ user: 'read', database: '' }), '08P01', 'no database given'],
    ['a missing user', startupMessage({ database: 'orders' }), '08P01', 'no user given'],
    ['an empty user', startupMessage({ user: '', database: 'orders' }), '08P01', 'no user given'],
    ['a user that is not a grant', startupMessage({ user: 'postgres', database: 'orders' }), '28000', 'user "postgres" is not a grant'],
    ['client_encoding SJIS', startupMessage({ user: 'read', database: 'orders', client_encoding: 'SJIS' }), '08P01', 'client_encoding'],
    ['client_encoding GBK', startupMessage({ user: 'read', database: 'orders', client_encoding: 'GBK' }), '08P01', 'client_encoding'],
    ['an overlong application_name', startupMessage({ user: 'read', database: 'orders', application_name: 'a'.repeat(64) }), '08P01', 'application_name'],
    ['a TimeZone with quotes', startupMessage({ user: 'read', database: 'orders', TimeZone: "UTC'; drop table x; --" }), '08P01', 'TimeZone'],
  ];

  it.each(cases)('refuses %s before asking for the token', async (_name, bytes, sqlstate, message) => {
    const messages = await exchange(bytes);
    // No AuthenticationCleartextPassword: the refusal comes first and alone.
    expectFatal(messages, sqlstate, message);
  });

  it('says which encoding to use instead of SJIS', async () => {
    const f = expectFatal(await exchange(startupMessage({ user: 'read', database: 'orders', client_encoding: 'SJIS' })), '08P01', 'client_encoding');
    expect(f.M).toContain('UTF8');
  });

  it.each([['UTF8'], ['utf-8'], ['SQL_ASCII'], ['unicode']])('accepts client_encoding %s and serves UTF8', async (encoding) => {
    const s = await openSession(t.host, t.port, startupParams('enc-test', { client_encoding: encoding }), token);
    try {
      expect(s.parameters.client_encoding).toBe('UTF8');
      s.client.write(query("select 'ä'::text as v"));
      const rows = await s.client.until('Z');
      const row = rows.find((m) => m.type === 'D')!;
      expect(row.payload.subarray(6).toString('utf8')).toBe('ä');
    } finally {
      s.client.destroy();
    }
  });

  it('lets libpq connect with PGCLIENTENCODING=SQL_ASCII and refuses SJIS with a readable message', async () => {
    const base = { PATH: process.env.PATH ?? '', PGPASSWORD: token };
    const bin = `${t.pg.binDir}/psql`;
    const ascii = await runClient(bin, ['-X', '-At', t.url('read'), '-c', 'show client_encoding'], { ...base, PGCLIENTENCODING: 'SQL_ASCII' });
    expect(ascii.stdout.trim()).toBe('UTF8');
    const sjis = await runClient(bin, ['-X', '-At', t.url('read'), '-c', 'select 1'], { ...base, PGCLIENTENCODING: 'SJIS' });
    expect(sjis.code).not.toBe(0);
    expect(sjis.stderr).toContain('client_encoding');
    expect(sjis.stderr).not.toContain(token.slice(-20));
  });
});

describe('TLS and GSSAPI negotiation', () => {
  it('refuses bytes sent behind SSLRequest before the handshake', async () => {
    const smuggled = Buffer.concat([sslRequest(), startupMessage(startupParams('smuggle'))]);
    const messages = await exchange(smuggled);
    expectFatal(messages, '08P01', 'data received after SSLRequest before the TLS handshake');
    expect(await backendsFor('smuggle')).toBe(0);
  });

  it('refuses a password smuggled behind SSLRequest even when split from it by the client', async () => {
    const c = await RawClient.connect(t.host, t.port);
    try {
      c.write(Buffer.concat([sslRequest(), Buffer.from([0])]));
      expectFatal(await c.untilClosed(), '08P01', 'data received after SSLRequest');
    } finally {
      c.destroy();
    }
  });

  it('answers GSSENCRequest with N and goes on to TLS and a session', async () => {
    const c = await RawClient.connect(t.host, t.port);
    try {
      c.write(GSSENC_REQUEST);
      expect(await c.readByte()).toBe(0x4e);
      await c.startTls();
      c.write(startupMessage(startupParams('after-gss')));
      const ask = await c.next();
      expect(ask !== CLOSED && authCode(ask)).toBe(AUTH.CleartextPassword);
      c.write(passwordMessage(token));
      const hello = await c.until('Z');
      expect(hello.map((m) => m.type)).toContain('K');
      c.write(query('select 1'));
      const r = await c.until('Z');
      expect(r.map((m) => m.type)).toEqual(['T', 'D', 'C', 'Z']);
    } finally {
      c.destroy();
    }
  });

  it('answers GSSENCRequest with N and goes on to a plaintext startup', async () => {
    const c = await RawClient.connect(t.host, t.port);
    try {
      c.write(GSSENC_REQUEST);
      expect(await c.readByte()).toBe(0x4e);
      c.write(startupMessage(startupParams('after-gss-plain')));
      const ask = await c.next();
      expect(ask !== CLOSED && authCode(ask)).toBe(AUTH.CleartextPassword);
    } finally {
      c.destroy();
    }
  });

  it('refuses bytes sent behind GSSENCRequest', async () => {
    expectFatal(await exchange(Buffer.concat([GSSENC_REQUEST, startupMessage(startupParams('gss-smuggle'))])), '08P01', 'data received after GSSENCRequest');
  });

  it('refuses a second SSLRequest inside TLS', async () => {
    expectFatal(await exchange(sslRequest(), { tls: true }), '08P01', 'SSLRequest received inside TLS');
    await servesNormally();
  });

  it('survives clients that reset the connection right after a bad packet, in plaintext and in TLS', async () => {
    const aborts: Promise<void>[] = [];
    for (let i = 0; i < 10; i++) {
      const c = await RawClient.connect(t.host, t.port);
      if (i % 2) await c.startTls();
      aborts.push(c.abortAfter(Buffer.concat([int32(2), Buffer.alloc(8)]), 10 * i));
      const slow = await RawClient.connect(t.host, t.port);
      if (i % 2) await slow.startTls();
      slow.write(startupMessage(startupParams('reset-during-password')));
      await slow.next();
      aborts.push(slow.abortAfter(passwordMessage('not-a-token'), 10 * i));
    }
    await Promise.all(aborts);
    await servesNormally();
  });

  it('frees the unauthenticated slot of a client that leaves during the TLS handshake', async () => {
    const gw = await startGateway((c) => {
      c.server.postgres.max_unauthenticated = 2;
      c.server.postgres.auth_timeout = 60;
    });
    try {
      for (let i = 0; i < 4; i++) {
        const c = await RawClient.connect(gw.host, gw.port);
        c.write(sslRequest());
        expect(await c.readByte()).toBe(0x53);
        if (i % 2) c.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 1, 2]));
        c.end();
        expect(await c.next()).toBe(CLOSED);
        c.destroy();
      }
      await vi.waitFor(() => servesNormally(gw), { timeout: 5000, interval: 100 });
    } finally {
      await gw.stop();
    }
  });

  it('closes a connection that was answered S and never starts the handshake', async () => {
    const gw = await startGateway((c) => (c.server.postgres.auth_timeout = 1));
    const c = await RawClient.connect(gw.host, gw.port);
    try {
      c.write(sslRequest());
      expect(await c.readByte()).toBe(0x53);
      // The client goes silent instead of sending a ClientHello.
      expect(await c.next(5000)).toBe(CLOSED);
      await servesNormally(gw);
    } finally {
      c.destroy();
      await gw.stop();
    }
  });
});

describe('when plaintext is not allowed', () => {
  let strict: TestGateway;
  beforeAll(async () => {
    strict = await startGateway((c) => {
      c.server.postgres.allow_plaintext = false;
      c.server.postgres.max_unauthenticated = 3;
      c.server.postgres.auth_timeout = 1;
    });
  });
  afterAll(async () => {
    await strict?.stop();
  });

  it('refuses a plaintext startup with 28000 before asking for the token', async () => {
    const messages = await exchange(startupMessage(startupParams('plain')), { gw: strict });
    expect(messages.some((m) => authCode(m) === AUTH.CleartextPassword)).toBe(false);
    expectFatal(messages, '28000', 'Sluice accepts tokens only over TLS');
  });

  it('refuses a plaintext startup after a refused GSSENCRequest too', async () => {
    const c = await RawClient.connect(strict.host, strict.port);
    try {
      c.write(GSSENC_REQUEST);
      expect(await c.readByte()).toBe(0x4e);
      c.write(startupMessage(startupParams('plain-gss')));
      expectFatal(await c.untilClosed(), '28000', 'only over TLS');
    } finally {
      c.destroy();
    }
  });

  it('asks for the token inside TLS', async () => {
    const s = await openSession(strict.host, strict.port, startupParams('strict-tls'), await strict.token('alice', ['dba']));
    s.client.destroy();
    await servesNormally(strict);
  });

  it('refuses connections past max_unauthenticated with 53300 and recovers when they leave', async () => {
    const idle = await Promise.all([1, 2, 3].map(() => RawClient.connect(strict.host, strict.port)));
    try {
      // The three connections are accepted (counted) before the fourth arrives.
      await new Promise((r) => setTimeout(r, 100));
      const extra = await exchange(Buffer.alloc(0), { gw: strict });
      expectFatal(extra, '53300', 'too many connections are authenticating');
    } finally {
      for (const c of idle) c.destroy();
    }
    await vi.waitFor(() => servesNormally(strict), { timeout: 5000, interval: 100 });
  });

  it('closes a connection that never sends the token once auth_timeout passes', async () => {
    const c = await RawClient.connect(strict.host, strict.port);
    try {
      await c.startTls();
      c.write(startupMessage(startupParams('slow')));
      const ask = await c.next();
      expect(ask !== CLOSED && authCode(ask)).toBe(AUTH.CleartextPassword);
      const rest = await c.untilClosed(5000);
      expectFatal(rest, '08P01', 'authentication did not finish within 1 s');
    } finally {
      c.destroy();
    }
    await servesNormally(strict);
  });

  it('closes a connection that sends nothing at all once auth_timeout passes', async () => {
    const c = await RawClient.connect(strict.host, strict.port);
    try {
      expectFatal(await c.untilClosed(5000), '08P01', 'authentication did not finish within 1 s');
    } finally {
      c.destroy();
    }
  });
});

describe('before authentication finishes', () => {
  it('refuses a password message far larger than any token without buffering it', async () => {
    const c = await RawClient.connect(t.host, t.port);
    try {
      c.write(startupMessage(startupParams('big-password')));
      const ask = await c.next();
      expect(ask !== CLOSED && authCode(ask)).toBe(AUTH.CleartextPassword);
      // Claims just under max_message_bytes: within the session limit, far beyond any token.
      c.write(frame('p', Buffer.alloc(0), MAX_MESSAGE_BYTES - 1));
      c.write(Buffer.alloc(MAX_MESSAGE_BYTES / 2, 0x41));
      expectFatal(await c.untilClosed(), '54000', /^more than 75535 bytes arrived before authentication finished/);
    } finally {
      c.destroy();
    }
    await servesNormally();
  });

  it('refuses a message other than the password', async () => {
    const c = await RawClient.connect(t.host, t.port);
    try {
      c.write(startupMessage(startupParams('no-password')));
      await c.next();
      c.write(query('select 1'));
      expectFatal(await c.untilClosed(), '08P01', 'expected a password message');
    } finally {
      c.destroy();
    }
  });

  it('refuses an empty token and a malformed password message', async () => {
    const empty = await exchange(Buffer.concat([startupMessage(startupParams('empty-token')), passwordMessage('')]));
    expect(authCode(empty[0])).toBe(AUTH.CleartextPassword);
    expectFatal(empty.slice(1), '28000', 'no token given');
    const unterminated = await exchange(Buffer.concat([startupMessage(startupParams('bad-password')), frame('p', Buffer.from('abc'))]));
    expectFatal(unterminated.slice(1), '08P01', 'not NUL-terminated');
  });

  it('releases the backend when the client leaves while its session is being opened', async () => {
    const app = 'gone-during-connect';
    for (let i = 0; i < 5; i++) {
      const c = await RawClient.connect(t.host, t.port);
      c.write(startupMessage(startupParams(app)));
      await c.next();
      c.write(passwordMessage(token));
      c.destroy();
    }
    await new Promise((r) => setTimeout(r, 300));
    await expectBackendReleased(app);
  });

  it('serves a client that pipelines more statements behind its token than Sluice buffers before authentication', async () => {
    const c = await RawClient.connect(t.host, t.port);
    try {
      c.write(startupMessage(startupParams('pipeliner')));
      await c.next();
      const statements = Array.from({ length: 20 }, (_, i) => query(`select ${i} /* ${'x'.repeat(10_000)} */`));
      c.write(Buffer.concat([passwordMessage(token), ...statements]));
      const hello = await c.until('Z');
      expect(hello.map((m) => m.type)).toContain('K');
      for (let i = 0; i < 20; i++) {
        const r = await c.until('Z');
        expect(r.map((m) => m.type)).toEqual(['T', 'D', 'C', 'Z']);
        expect(r[1].payload.subarray(6).toString()).toBe(String(i));
      }
    } finally {
      c.destroy();
    }
  });
});

describe('after authentication', () => {
  const cases: Array<[string, Buffer, string, RegExp | string]> = [
    ['length 0', frame('Q', Buffer.from('select 1\0'), 0), '08P01', 'invalid message length 0'],
    ['length 1', frame('Q', Buffer.from('select 1\0'), 1), '08P01', 'invalid message length 1'],
    ['length 2', frame('Q', Buffer.from('select 1\0'), 2), '08P01', 'invalid message length 2'],
    ['length 3', frame('Q', Buffer.from('select 1\0'), 3), '08P01', 'invalid message length 3'],
    ['a negative length', frame('Q', Buffer.from('select 1\0'), -1), '08P01', 'invalid message length -1'],
    ['a length over max_message_bytes', frame('Q', Buffer.from('select 1\0'), MAX_MESSAGE_BYTES + 1), '54000', `exceeds the limit of ${MAX_MESSAGE_BYTES} bytes`],
    ['an unknown message type', frame('z', Buffer.alloc(0)), '08P01', 'unexpected message type "z"'],
    ['a password message', passwordMessage('again'), '08P01', 'unexpected message type "p"'],
    ['a Query without its NUL', frame('Q', Buffer.from('select 1')), '08P01', /malformed Query message/],
    ['a truncated Parse', frame('P', Buffer.from('stmt\0select 1')), '08P01', /malformed Parse message/],
    ['a Parse declaring more parameter types than it carries', frame('P', Buffer.concat([Buffer.from('s\0select $1\0'), Buffer.from([0, 5]), int32(23)])), '08P01', 'declares 5 parameter types'],
    ['a truncated Bind', frame('B', Buffer.concat([Buffer.from('\0\0'), Buffer.from([0, 0, 0, 1]), int32(100), Buffer.from('abc')])), '08P01', /malformed Bind message/],
    ['a Bind declaring 65535 parameters', frame('B', Buffer.concat([Buffer.from('\0\0'), Buffer.from([0, 0, 0xff, 0xff])])), '08P01', 'declares 65535 parameters'],
    ['a Bind with a negative parameter length', frame('B', Buffer.concat([Buffer.from('\0\0'), Buffer.from([0, 0, 0, 1]), int32(-2), Buffer.from([0, 0])])), '08P01', 'parameter 1 has length -2'],
    ['an Execute without its row limit', frame('E', Buffer.from('\0')), '08P01', /malformed Execute message/],
    ['a Describe of neither statement nor portal', frame('D', Buffer.from('X\0')), '08P01', "target must be 'S' or 'P'"],
    ['a Query that is not UTF-8', frame('Q', Buffer.from([0x73, 0x65, 0x6c, 0xc0, 0x27, 0])), '22021', 'invalid UTF-8'],
    ['a FunctionCall', frame('F', Buffer.concat([int32(1234), Buffer.from([0, 0, 0, 0, 0, 0])])), '0A000', 'function-call sub-protocol'],
  ];

  it.each(cases)('ends the session on %s with a FATAL ErrorResponse and releases the backend', async (name, bytes, sqlstate, message) => {
    const app = `bad-frame-${cases.findIndex((c) => c[0] === name)}`;
    const s = await openSession(t.host, t.port, startupParams(app), token, { tls: false });
    try {
      expect(await backendsFor(app)).toBe(1);
      s.client.write(bytes);
      expectFatal(await s.client.untilClosed(), sqlstate, message);
    } finally {
      s.client.destroy();
    }
    await expectBackendReleased(app);
  });

  it('ends the session even when the bad frame follows good ones in the same write', async () => {
    const app = 'bad-after-good';
    const s = await openSession(t.host, t.port, startupParams(app), token);
    try {
      s.client.write(query('select 1'));
      expect((await s.client.until('Z')).map((m) => m.type)).toEqual(['T', 'D', 'C', 'Z']);
      s.client.write(Buffer.concat([query('select 2'), frame('Q', Buffer.alloc(0), 2)]));
      const rest = await s.client.untilClosed();
      expect(rest.filter((m) => m.type === 'E').map((m) => errorFields(m).C)).toEqual(['08P01']);
    } finally {
      s.client.destroy();
    }
    await expectBackendReleased(app);
    await servesNormally();
  });

  it('keeps serving psql afterwards', async () => {
    const r = await psql(t, t.url('read'), token, ['-c', 'select 7']);
    expect(r.stdout.trim()).toBe('7');
  });
});

describe('CancelRequest', () => {
  async function waitForSleep(app: string): Promise<number> {
    return vi.waitFor(
      async () => {
        const r = await admin.query<{ pid: number }>("select pid from pg_stat_activity where application_name = $1 and state = 'active' and query like '%pg_sleep%'", [app]);
        expect(r.rows).toHaveLength(1);
        return r.rows[0].pid;
      },
      { timeout: 5000, interval: 20 },
    );
  }

  async function sendCancel(pid: number, secret: number): Promise<BackendMessage[]> {
    return exchange(cancelRequest(pid, secret));
  }

  it('does nothing with guessed keys: the running statement completes', async () => {
    const app = 'cancel-guess';
    const s = await openSession(t.host, t.port, startupParams(app), token);
    try {
      s.client.write(query('select pg_sleep(2)'));
      const backendPid = await waitForSleep(app);
      expect(backendPid).not.toBe(s.key.pid);
      // The gateway answers a CancelRequest with nothing but a close, whatever the key.
      expect(await sendCancel(s.key.pid, (s.key.secret + 1) >>> 0)).toEqual([]);
      expect(await sendCancel((s.key.pid + 1) >>> 0, s.key.secret)).toEqual([]);
      expect(await sendCancel(backendPid, s.key.secret)).toEqual([]);
      expect(await sendCancel(0, 0)).toEqual([]);
      expect(await sendCancel(0xffffffff, 0xffffffff)).toEqual([]);
      const result = await s.client.until('Z', 10_000);
      expect(result.map((m) => m.type)).toEqual(['T', 'D', 'C', 'Z']);
    } finally {
      s.client.destroy();
    }
  });

  it('cancels the running statement with the keys from BackendKeyData', async () => {
    const app = 'cancel-right';
    const s = await openSession(t.host, t.port, startupParams(app), token);
    try {
      s.client.write(query('select pg_sleep(20)'));
      await waitForSleep(app);
      expect(await sendCancel(s.key.pid, s.key.secret)).toEqual([]);
      const result = await s.client.until('Z', 10_000);
      const err = result.find((m) => m.type === 'E');
      expect(errorFields(err).C).toBe('57014');
      expect(result[result.length - 1].type).toBe('Z');
      s.client.write(query('select 1'));
      expect((await s.client.until('Z')).map((m) => m.type)).toEqual(['T', 'D', 'C', 'Z']);
    } finally {
      s.client.destroy();
    }
  });

  it('forgets the keys of a closed session', async () => {
    const app = 'cancel-stale';
    const s = await openSession(t.host, t.port, startupParams(app), token);
    s.client.write(Buffer.from([0x58, 0, 0, 0, 4]));
    expect(await s.client.untilClosed()).toEqual([]);
    await expectBackendReleased(app);
    const other = await openSession(t.host, t.port, startupParams(`${app}-2`), token);
    try {
      other.client.write(query('select pg_sleep(1)'));
      await waitForSleep(`${app}-2`);
      expect(await sendCancel(s.key.pid, s.key.secret)).toEqual([]);
      expect((await other.client.until('Z', 10_000)).map((m) => m.type)).toEqual(['T', 'D', 'C', 'Z']);
    } finally {
      other.client.destroy();
    }
  });
});

describe('a client that stops reading', () => {
  it('does not make the gateway buffer a 1,000,000-row result, and the result completes on resume', async () => {
    const s = await openSession(t.host, t.port, startupParams('slow-reader'), token, { tls: false });
    try {
      s.client.write(query("select g, repeat('x', 120) from generate_series(1, 1000000) g"));
      let rows = 0;
      for (;;) {
        const m = await s.client.next();
        if (m === CLOSED) throw new Error('closed early');
        if (m.type === 'D' && ++rows === 1000) break;
      }
      s.client.pause();
      const before = process.memoryUsage().rss;
      let peak = before;
      for (let i = 0; i < 30; i++) {
        await new Promise((r) => setTimeout(r, 100));
        peak = Math.max(peak, process.memoryUsage().rss);
      }
      expect(peak - before).toBeLessThan(64 * 1024 * 1024);
      s.client.resume();
      let tag = '';
      for (;;) {
        const m = await s.client.next(20_000);
        if (m === CLOSED) throw new Error('closed before the result completed');
        if (m.type === 'D') rows++;
        else if (m.type === 'C') tag = m.payload.toString('utf8', 0, m.payload.length - 1);
        else if (m.type === 'Z') break;
      }
      expect(rows).toBe(1_000_000);
      expect(tag).toBe('SELECT 1000000');
    } finally {
      s.client.destroy();
    }
    await servesNormally();
  }, 60_000);
});

describe('fuzzing', () => {
  const startupBytes = fc.oneof(
    fc.uint8Array({ maxLength: 64 }),
    fc.uint8Array({ maxLength: 200 }).map((b) => packet(Buffer.from(b))),
    fc
      .tuple(fc.constantFrom(REQUEST_CODE.Protocol3, REQUEST_CODE.Cancel, REQUEST_CODE.GSSENC, 0x30002, 0), fc.uint8Array({ maxLength: 120 }))
      .map(([code, body]) => packet(Buffer.concat([int32(code), Buffer.from(body)]))),
    fc
      .array(fc.tuple(fc.string({ maxLength: 12 }), fc.string({ maxLength: 12 })), { maxLength: 5 })
      .map((kv) => packet(Buffer.concat([PROTOCOL_3, ...kv.map(([k, v]) => pairs(k.replaceAll('\0', ''), v)), Buffer.from([0])]))),
  );

  it('survives arbitrary startup packets', async () => {
    await fc.assert(
      fc.asyncProperty(startupBytes, async (bytes) => {
        const answer = await exchange(Buffer.from(bytes), { endAfter: true });
        // A refused startup gets at most one ErrorResponse; one that reached the token prompt gets R then the close.
        for (const m of answer) expect(['E', 'R']).toContain(m.type);
      }),
      { numRuns: 80 },
    );
    await servesNormally();
  }, 30_000);

  const frontendType = fc.constantFrom(..."QPBEDCHSXdcfFpz\0".split(''));
  const anyFrame = fc.oneof(
    fc.tuple(frontendType, fc.uint8Array({ maxLength: 40 })).map(([type, body]) => frame(type, Buffer.from(body))),
    fc.tuple(frontendType, fc.uint8Array({ maxLength: 40 }), fc.integer({ min: -10, max: MAX_MESSAGE_BYTES * 2 })).map(([type, body, len]) => frame(type, Buffer.from(body), len)),
    fc.uint8Array({ minLength: 1, maxLength: 40 }).map((b) => Buffer.from(b)),
  );

  it('survives arbitrary frames after authentication and releases every backend', async () => {
    const app = 'fuzz-frames';
    await fc.assert(
      fc.asyncProperty(fc.array(anyFrame, { minLength: 1, maxLength: 4 }), async (frames) => {
        const s = await openSession(t.host, t.port, startupParams(app), token, { tls: false });
        try {
          s.client.write(Buffer.concat(frames));
          s.client.end();
          const answer = await s.client.untilClosed(10_000);
          for (const m of answer.filter((x) => x.type === 'E')) expect(errorFields(m).C).toMatch(/^[0-9A-Z]{5}$/);
        } finally {
          s.client.destroy();
        }
      }),
      { numRuns: 25 },
    );
    await expectBackendReleased(app);
    await servesNormally();
  }, 30_000);
});
