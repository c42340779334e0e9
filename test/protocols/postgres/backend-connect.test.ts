import { afterEach, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { createServer, Socket, type Server } from 'node:net';
import { TLSSocket } from 'node:tls';
import { testPostgres, type TestRole } from '../../support/pg-env.js';
import { freePort } from '../../../src/devdb/free-port.js';
import { connectBackend, type BackendConnection, type BackendTarget } from '../../../src/protocols/postgres/backend/connect.js';
import { BackendError } from '../../../src/protocols/postgres/backend/errors.js';
import { FrameReader, type Frame } from '../../../src/protocols/postgres/codec/frame-reader.js';
import { BE } from '../../../src/protocols/postgres/codec/message-types.js';
import { ProtocolError } from '../../../src/protocols/postgres/codec/errors.js';
import { query, terminate } from '../../../src/protocols/postgres/codec/frontend-serializer.js';
import { parseCommandComplete, parseReadyForQuery, parseRowDescription } from '../../../src/protocols/postgres/codec/backend-parser.js';

const env = testPostgres();
const ca = readFileSync(env.caFile, 'utf8');

function target(role: TestRole, over: Partial<BackendTarget> = {}): BackendTarget {
  return {
    host: env.host,
    port: env.port,
    database: env.database,
    user: role.user,
    password: role.password,
    tls: { mode: 'disable' },
    connectTimeoutMs: 10_000,
    ...over,
  };
}

const open: BackendConnection[] = [];
const servers: Server[] = [];
afterEach(async () => {
  for (const c of open.splice(0)) c.socket.destroy();
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

async function connect(t: BackendTarget, params: Record<string, string> = {}): Promise<BackendConnection> {
  const c = await connectBackend(t, params);
  open.push(c);
  return c;
}

async function failure(p: Promise<unknown>): Promise<BackendError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(BackendError);
  return err as BackendError;
}

/** Reads messages from a handed-over connection until ReadyForQuery. */
function untilReady(conn: BackendConnection): Promise<Frame[]> {
  const reader = new FrameReader({ maxMessageBytes: 1 << 20, maxStartupBytes: 10_000 });
  reader.push(conn.pending);
  const frames: Frame[] = [];
  return new Promise((resolve, reject) => {
    const take = (): boolean => {
      for (let f = reader.next(); f; f = reader.next()) {
        frames.push(f);
        if (f.type === BE.ReadyForQuery) return true;
      }
      return false;
    };
    const onData = (chunk: Buffer): void => {
      reader.push(chunk);
      if (take()) {
        conn.socket.pause();
        conn.socket.off('data', onData);
        conn.socket.off('error', reject);
        resolve(frames);
      }
    };
    if (take()) return resolve(frames);
    conn.socket.on('data', onData);
    conn.socket.on('error', reject);
    conn.socket.resume();
  });
}

async function listen(onConnection: (s: Socket) => void): Promise<number> {
  const server = createServer(onConnection);
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as { port: number }).port;
}

describe('connectBackend', () => {
  it('authenticates with SCRAM-SHA-256 and hands over an idle, paused socket', async () => {
    const c = await connect(target(env.roles.reader));
    expect(c.authMethod).toBe('scram-sha-256');
    expect(c.tls).toBe(false);
    expect(c.parameters.get('server_version')).toMatch(/^15\./);
    expect(c.parameters.get('session_authorization')).toBe(env.roles.reader.user);
    expect(c.key.pid).toBeGreaterThan(0);
    expect(c.pending.length).toBe(0);
    expect(c.socket.isPaused()).toBe(true);
    const fresh = new Socket();
    for (const ev of ['data', 'error', 'close', 'end', 'timeout']) expect(c.socket.listenerCount(ev)).toBe(fresh.listenerCount(ev));

    c.socket.write(query('select count(*) from customers'));
    const frames = await untilReady(c);
    expect(frames.map((f) => String.fromCharCode(f.type)).join('')).toBe('TDCZ');
    expect(parseRowDescription(frames[0].payload)[0]).toMatchObject({ name: 'count', typeOid: 20, tableOid: 0 });
    expect(frames[1].payload.subarray(6).toString()).toBe('100');
    expect(parseCommandComplete(frames[2].payload)).toBe('SELECT 1');
    expect(parseReadyForQuery(frames[3].payload)).toBe('I');
    c.socket.end(terminate());
  });

  it('reports the source table of columns in RowDescription', async () => {
    const c = await connect(target(env.roles.reader));
    c.socket.write(query('select id, name from customers limit 1'));
    const [t] = await untilReady(c);
    const fields = parseRowDescription(t.payload);
    expect(fields.map((f) => [f.name, f.columnAttr])).toEqual([
      ['id', 1],
      ['name', 2],
    ]);
    expect(fields[0].tableOid).toBeGreaterThan(0);
    expect(fields[0].tableOid).toBe(fields[1].tableOid);
  });

  it('authenticates with md5', async () => {
    const c = await connect(target(env.roles.md5));
    expect(c.authMethod).toBe('md5');
  });

  it('authenticates with a cleartext password', async () => {
    const c = await connect(target(env.roles.plain));
    expect(c.authMethod).toBe('cleartext');
  });

  it('forwards startup parameters but never lets them replace user or database', async () => {
    const c = await connect(target(env.roles.reader), { application_name: 'sluice-test', user: 'postgres', database: 'postgres' });
    expect(c.parameters.get('application_name')).toBe('sluice-test');
    expect(c.parameters.get('session_authorization')).toBe(env.roles.reader.user);
    c.socket.write(query('select current_database()'));
    const frames = await untilReady(c);
    expect(frames[1].payload.subarray(6).toString()).toBe(env.database);
  });

  it('refuses a parameter value with NUL before opening any connection', async () => {
    const port = await listen(() => {
      throw new Error('no connection expected');
    });
    const err = await connectBackend(target(env.roles.reader, { port }), { application_name: 'x\0options\0-c x=y' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProtocolError);
    expect((err as ProtocolError).code).toBe('value_contains_nul');
  });

  it('encrypts without verifying in require mode', async () => {
    const c = await connect(target(env.roles.reader, { tls: { mode: 'require' } }));
    expect(c.tls).toBe(true);
    expect(c.socket).toBeInstanceOf(TLSSocket);
    expect((c.socket as TLSSocket).encrypted).toBe(true);
    c.socket.write(query('select ssl from pg_stat_ssl where pid = pg_backend_pid()'));
    const frames = await untilReady(c);
    expect(frames[1].payload.subarray(6).toString()).toBe('t');
  });

  it('verifies chain and host name in verify-full mode, reaching a hostssl-only role', async () => {
    const c = await connect(target(env.roles.tls, { tls: { mode: 'verify-full', ca } }));
    expect(c.tls).toBe(true);
    expect((c.socket as TLSSocket).authorized).toBe(true);
    expect(c.authMethod).toBe('scram-sha-256');
  });

  it('accepts a server name the certificate carries', async () => {
    const c = await connect(target(env.roles.reader, { tls: { mode: 'verify-full', ca, serverName: 'localhost' } }));
    expect(c.tls).toBe(true);
  });

  it('refuses a certificate issued for another name in verify-full mode', async () => {
    const err = await failure(connectBackend(target(env.roles.reader, { tls: { mode: 'verify-full', ca, serverName: 'db.example.com' } }), {}));
    expect(err.code).toBe('backend_tls_failed');
    expect(err.sqlstate).toBe('08001');
    expect(err.message).toContain('db.example.com');
  });

  it('refuses a certificate the CA bundle does not vouch for', async () => {
    const err = await failure(connectBackend(target(env.roles.reader, { tls: { mode: 'verify-full' } }), {}));
    expect(err.code).toBe('backend_tls_failed');
  });

  it("passes the server's SQLSTATE 28000 through when pg_hba.conf refuses plaintext", async () => {
    const err = await failure(connectBackend(target(env.roles.tls), {}));
    expect(err.code).toBe('backend_auth_failed');
    expect(err.sqlstate).toBe('28000');
    expect(err.fields?.M).toMatch(/pg_hba\.conf/);
  });

  it('reports a wrong password as 28P01 without revealing it', async () => {
    const password = 'wrong-password-9f3c1a';
    const err = await failure(connectBackend(target(env.roles.reader, { password }), {}));
    expect(err.code).toBe('backend_auth_failed');
    expect(err.sqlstate).toBe('28P01');
    expect(err.message).toContain(`${env.host}:${env.port}`);
    expect(err.message).toContain(env.roles.reader.user);
    expect(err.message).not.toContain(password);
    expect(JSON.stringify(err.fields)).not.toContain(password);
    expect(String(err.stack)).not.toContain(password);
  });

  it('reports a wrong password over TLS as 28P01 too', async () => {
    const err = await failure(connectBackend(target(env.roles.tls, { password: 'not-it', tls: { mode: 'verify-full', ca } }), {}));
    expect(err.sqlstate).toBe('28P01');
  });

  it.each(['md5', 'plain'] as const)('reports a wrong %s password as 28P01', async (role) => {
    const err = await failure(connectBackend(target(env.roles[role], { password: 'nope-nope' }), {}));
    expect(err.sqlstate).toBe('28P01');
    expect(err.message).not.toContain('nope-nope');
  });

  it("passes through the server's refusal of an unknown database", async () => {
    const err = await failure(connectBackend(target(env.roles.reader, { database: 'no_such_db' }), {}));
    expect(err.code).toBe('backend_rejected');
    expect(err.sqlstate).toBe('3D000');
  });

  it('reports a closed port as unreachable', async () => {
    const port = await freePort();
    const err = await failure(connectBackend(target(env.roles.reader, { port }), {}));
    expect(err.code).toBe('backend_unreachable');
    expect(err.sqlstate).toBe('08001');
    expect(err.message).toContain(`127.0.0.1:${port}`);
    expect(err.message).not.toContain(env.roles.reader.password);
  });

  it.each(['disable', 'require'] as const)('times out against a server that never answers (tls %s) and closes the socket', async (mode) => {
    let closed!: () => void;
    const serverSawClose = new Promise<void>((r) => (closed = r));
    const port = await listen((s) => {
      s.on('error', () => {});
      s.on('close', () => closed());
      s.resume();
    });
    const err = await failure(connectBackend(target(env.roles.reader, { port, connectTimeoutMs: 300, tls: { mode } }), {}));
    expect(err.code).toBe('backend_timeout');
    expect(err.message).toContain(`127.0.0.1:${port}`);
    await serverSawClose;
  });
});
