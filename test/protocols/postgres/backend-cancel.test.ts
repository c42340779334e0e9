import { afterEach, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import pg from 'pg';
import { testPostgres } from '../../support/pg-env.js';
import { freePort } from '../../../src/devdb/free-port.js';
import { connectBackend, type BackendConnection, type BackendTarget } from '../../../src/protocols/postgres/backend/connect.js';
import { sendCancel } from '../../../src/protocols/postgres/backend/cancel.js';
import { BackendError } from '../../../src/protocols/postgres/backend/errors.js';
import { FrameReader, type Frame } from '../../../src/protocols/postgres/codec/frame-reader.js';
import { BE } from '../../../src/protocols/postgres/codec/message-types.js';
import { query } from '../../../src/protocols/postgres/codec/frontend-serializer.js';
import { parseErrorFields } from '../../../src/protocols/postgres/codec/backend-parser.js';

const env = testPostgres();
const ca = readFileSync(env.caFile, 'utf8');

const open: BackendConnection[] = [];
const servers: Server[] = [];
afterEach(async () => {
  for (const c of open.splice(0)) c.socket.destroy();
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

function target(tls: BackendTarget['tls']): BackendTarget {
  return { host: env.host, port: env.port, database: env.database, ...env.roles.reader, tls, connectTimeoutMs: 10_000 };
}

/** Collects the session's messages up to ReadyForQuery. */
function untilReady(conn: BackendConnection): Promise<Frame[]> {
  const reader = new FrameReader({ maxMessageBytes: 1 << 20, maxStartupBytes: 10_000 });
  reader.push(conn.pending);
  const frames: Frame[] = [];
  return new Promise((resolve, reject) => {
    conn.socket.on('error', reject);
    conn.socket.on('data', (chunk: Buffer) => {
      reader.push(chunk);
      for (let f = reader.next(); f; f = reader.next()) {
        frames.push(f);
        if (f.type === BE.ReadyForQuery) resolve(frames);
      }
    });
    conn.socket.resume();
  });
}

/** Waits until the backend runs our statement, so the cancel cannot arrive before it starts. */
async function waitUntilActive(pid: number): Promise<void> {
  const client = new pg.Client({ host: env.host, port: env.port, database: env.database, ...env.roles.reader });
  await client.connect();
  try {
    for (;;) {
      const r = await client.query("select 1 from pg_stat_activity where pid = $1 and state = 'active' and query like '%pg_sleep%'", [pid]);
      if (r.rowCount) return;
      await new Promise((res) => setTimeout(res, 20));
    }
  } finally {
    await client.end();
  }
}

describe('sendCancel', () => {
  it.each([
    ['disable', { mode: 'disable' }],
    ['require', { mode: 'require' }],
    ['verify-full', { mode: 'verify-full', ca }],
  ] as const)('cancels a running statement (tls %s)', async (_mode, tls) => {
    const conn = await connectBackend(target(tls), {});
    open.push(conn);
    const reply = untilReady(conn);
    conn.socket.write(query('SELECT pg_sleep(30)'));
    await waitUntilActive(conn.key.pid);
    await sendCancel(target(tls), conn.key);
    const frames = await reply;
    const error = frames.find((f) => f.type === BE.ErrorResponse);
    expect(error).toBeDefined();
    expect(parseErrorFields(error!.payload).C).toBe('57014');
  });

  it('resolves quietly when the key matches no session, as the server gives no answer either way', async () => {
    await expect(sendCancel(target({ mode: 'disable' }), { pid: 1, secret: 2 })).resolves.toBeUndefined();
  });

  it('reports an unreachable server', async () => {
    const port = await freePort();
    const err = await sendCancel({ host: '127.0.0.1', port, tls: { mode: 'disable' }, connectTimeoutMs: 5000 }, { pid: 1, secret: 2 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackendError);
    expect((err as BackendError).code).toBe('backend_unreachable');
  });

  it('times out when the server never closes', async () => {
    const server = createServer((s) => s.resume());
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    const err = await sendCancel({ host: '127.0.0.1', port, tls: { mode: 'disable' }, connectTimeoutMs: 200 }, { pid: 1, secret: 2 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackendError);
    expect((err as BackendError).code).toBe('backend_timeout');
  });
});
