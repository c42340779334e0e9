import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { createServer, connect as netConnect, type Server } from 'node:net';
import { once } from 'node:events';
import pg from 'pg';
import { testPostgres } from '../support/pg-env.js';
import { connectBackend, type BackendConnection } from '../../src/protocols/postgres/backend/connect.js';
import { BackendError } from '../../src/protocols/postgres/backend/errors.js';
import { simpleQuery } from '../../src/protocols/postgres/backend/simple-query.js';
import { terminate } from '../../src/protocols/postgres/codec/frontend-serializer.js';
import { commandComplete, errorResponse, noticeResponse, readyForQuery } from '../../src/protocols/postgres/codec/backend-serializer.js';
import { FrameWriter } from '../../src/protocols/postgres/codec/frame-writer.js';
import { loadCatalog } from '../../src/protocols/postgres/masking/load-catalog.js';
import {
  baseColumns,
  resolveRelation,
  splitQualifiedName,
  type CatalogRelation,
  type CatalogSnapshot,
} from '../../src/masking/catalog.js';
import { resolveMasking } from '../../src/masking/resolve.js';
import type { MaskingPlan } from '../../src/masking/rules.js';

const env = testPostgres();
const database = `sluice_catalog_${randomBytes(4).toString('hex')}`;

const SCHEMA = `
CREATE SCHEMA app;
CREATE SCHEMA other;
CREATE TABLE app.users (id int PRIMARY KEY, email text, password text, name text);
INSERT INTO app.users VALUES (1, 'A@example.com', 'pw1', 'Ann'), (2, 'b@example.com', 'pw2', 'Bob');
CREATE TABLE app.legacy (a int, gone text, b text);
ALTER TABLE app.legacy DROP COLUMN gone;
CREATE TABLE app.admins (id int, email text);
CREATE VIEW app.user_view AS
  SELECT id, email AS mail, lower(email) AS lower_email, name, id + 1 AS next_id FROM app.users;
CREATE VIEW app.user_view2 AS
  SELECT v.mail, v.lower_email AS le, v.name AS who FROM app.user_view v;
CREATE VIEW app.all_emails AS SELECT email FROM app.users UNION SELECT email FROM app.admins;
CREATE VIEW app.joined AS
  SELECT u.id, a.email AS admin_email, u.password FROM app.users u JOIN app.admins a ON a.id = u.id;
CREATE VIEW app.star AS SELECT * FROM app.users;
CREATE MATERIALIZED VIEW app.user_mat AS SELECT id, password AS pw, upper(name) AS shout FROM app.users;
CREATE TABLE other.users (id int, secret text);
CREATE VIEW other.user_view AS SELECT secret FROM other.users;
CREATE FUNCTION app.mask_me(t text) RETURNS text LANGUAGE sql AS $$ SELECT t $$;
CREATE VIEW app.fn_view AS SELECT app.mask_me(email) AS m, id FROM app.users;
CREATE VIEW app.cte_view AS WITH users AS (SELECT id, password AS email FROM app.users) SELECT email FROM users;
CREATE VIEW app.whole AS SELECT u AS r, u.id FROM app.users u;
CREATE VIEW app.json_rows AS SELECT row_to_json(u.*) AS j FROM app.users u;
CREATE VIEW app.counted AS SELECT count(*) AS n FROM app.users;
CREATE TABLE app.events (id int, email text, note text) PARTITION BY RANGE (id);
CREATE TABLE app.events_2024 (note text, junk int, email text, id int);
ALTER TABLE app.events_2024 DROP COLUMN junk;
ALTER TABLE app.events ATTACH PARTITION app.events_2024 FOR VALUES FROM (0) TO (100);
CREATE TABLE app.events_2025 PARTITION OF app.events FOR VALUES FROM (100) TO (200) PARTITION BY RANGE (id);
CREATE TABLE app.events_2025_h1 PARTITION OF app.events_2025 FOR VALUES FROM (100) TO (150);
INSERT INTO app.events VALUES (1, 'old@example.com', 'n1'), (120, 'new@example.com', 'n2');
CREATE TABLE app.parent_plain (id int, email text);
CREATE TABLE app.child_plain (extra text) INHERITS (app.parent_plain);
CREATE SCHEMA "Mixed Case";
CREATE TABLE "Mixed Case"."Tbl" (x int);
`;

let admin: pg.Client;
let conn: BackendConnection;
let cat: CatalogSnapshot;

function connect(): Promise<BackendConnection> {
  return connectBackend(
    {
      host: env.host,
      port: env.port,
      database,
      user: env.superuser.user,
      password: env.superuser.password,
      tls: { mode: 'disable' },
      connectTimeoutMs: 10_000,
    },
    { search_path: 'app, public' },
  );
}

function pgClient(db: string): pg.Client {
  return new pg.Client({ host: env.host, port: env.port, user: env.superuser.user, password: env.superuser.password, database: db });
}

beforeAll(async () => {
  admin = pgClient('postgres');
  await admin.connect();
  await admin.query(`CREATE DATABASE ${database}`);
  const setup = pgClient(database);
  await setup.connect();
  await setup.query(SCHEMA);
  await setup.end();
  conn = await connect();
  cat = await loadCatalog(conn);
});

afterAll(async () => {
  conn?.socket.end(terminate());
  await admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
  await admin.end();
});

function rel(name: string): CatalogRelation {
  const oid = cat.byName.get(name);
  expect(oid, name).toBeDefined();
  return cat.relations.get(oid!)!;
}

function attnum(r: CatalogRelation, column: string): number {
  const found = [...r.columns].find(([, c]) => c.name === column);
  expect(found, `${r.name}.${column}`).toBeDefined();
  return found![0];
}

/** 'schema.table.column' of each base column, sorted. */
function bases(relation: number, att: number): string[] {
  return baseColumns(cat, relation, att)
    .map((b) => {
      const r = cat.relations.get(b.relation)!;
      return `${r.schema}.${r.name}.${r.columns.get(b.attnum)!.name}`;
    })
    .sort();
}

function viewBases(view: string, column: string): string[] {
  const r = rel(view);
  return bases(r.oid, attnum(r, column));
}

describe('simpleQuery', () => {
  it('returns fields and text rows, with NULL as null', async () => {
    const r = await simpleQuery(conn, `SELECT 1 AS one, NULL::text AS nothing, 'é' AS accent UNION ALL SELECT 2, 'x', 'y' ORDER BY 1`);
    expect(r.fields).toEqual(['one', 'nothing', 'accent']);
    expect(r.rows).toEqual([
      ['1', null, 'é'],
      ['2', 'x', 'y'],
    ]);
    expect(conn.socket.listenerCount('data')).toBe(0);
    expect(conn.socket.isPaused()).toBe(true);
  });

  it('returns the last row-returning result of several statements, and nothing for commands', async () => {
    const r = await simpleQuery(conn, `SELECT 1; SELECT 'two' AS t; SET LOCAL work_mem = '8MB'`);
    expect(r).toEqual({ fields: ['t'], rows: [['two']] });
    expect(await simpleQuery(conn, '')).toEqual({ fields: [], rows: [] });
    expect(await simpleQuery(conn, 'SET application_name = x')).toEqual({ fields: [], rows: [] });
  });

  it('rejects with the server SQLSTATE and keeps the connection usable', async () => {
    const err = await simpleQuery(conn, 'SELEC 1').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackendError);
    expect((err as BackendError).sqlstate).toBe('42601');
    expect((err as BackendError).code).toBe('backend_rejected');
    const missing = await simpleQuery(conn, 'SELECT * FROM no_such_table').catch((e: unknown) => e);
    expect((missing as BackendError).sqlstate).toBe('42P01');
    expect((await simpleQuery(conn, 'SELECT 42')).rows).toEqual([['42']]);
  });

  it('rolls back the implicit transaction of a failing multi-statement query', async () => {
    const err = await simpleQuery(conn, `SELECT 1; SELECT 1/0; SELECT 3`).catch((e: unknown) => e);
    expect((err as BackendError).sqlstate).toBe('22012');
    expect((await simpleQuery(conn, 'SELECT pg_catalog.current_setting($$transaction_isolation$$) IS NOT NULL')).rows).toEqual([['t']]);
  });

  it('refuses COPY FROM STDIN without hanging and stays usable', async () => {
    const err = await simpleQuery(conn, 'COPY app.admins FROM STDIN').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackendError);
    expect((await simpleQuery(conn, 'SELECT count(*) FROM app.admins')).rows).toEqual([['0']]);
  });

  it('processes bytes left in conn.pending before the socket', async () => {
    // A NoticeResponse that arrived after the last ReadyForQuery.
    const payload = Buffer.from('Mhi\0\0', 'latin1');
    const notice = Buffer.concat([Buffer.from([0x4e, 0, 0, 0, 0]), payload]);
    notice.writeInt32BE(4 + payload.length, 1);
    conn.pending = notice;
    expect((await simpleQuery(conn, 'SELECT 7')).rows).toEqual([['7']]);
    expect(conn.pending.length).toBe(0);
  });

  it('reports a FATAL error and the closed connection', async () => {
    const victim = await connect();
    const pid = victim.key.pid;
    const pending = simpleQuery(victim, 'SELECT pg_catalog.pg_sleep(30)').catch((e: unknown) => e);
    await admin.query('SELECT pg_terminate_backend($1)', [pid]);
    const err = await pending;
    expect(err).toBeInstanceOf(BackendError);
    expect((err as BackendError).sqlstate).toBe('57P01');
    expect(victim.socket.destroyed).toBe(true);
  });

  it('times out by destroying the socket', async () => {
    const victim = await connect();
    const err = await simpleQuery(victim, 'SELECT pg_catalog.pg_sleep(30)', 100).catch((e: unknown) => e);
    expect((err as BackendError).code).toBe('backend_timeout');
    expect(victim.socket.destroyed).toBe(true);
  });
});

/** A server that answers the first Query with `reply` (split in single bytes when `dribble`), then optionally closes. */
async function fakeBackend(reply: Buffer, opts: { close?: boolean; dribble?: boolean } = {}): Promise<{ conn: BackendConnection; server: Server }> {
  const server = createServer((sock) => {
    sock.on('error', () => {});
    sock.once('data', () => {
      if (opts.dribble) for (const b of reply) sock.write(Buffer.from([b]));
      else sock.write(reply);
      if (opts.close) sock.end();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  if (typeof address !== 'object' || !address) throw new Error('no address');
  const socket = netConnect({ host: '127.0.0.1', port: address.port });
  await once(socket, 'connect');
  socket.pause();
  return { conn: { socket, parameters: new Map(), key: { pid: 0, secret: 0 }, tls: false, authMethod: 'trust', pending: Buffer.alloc(0) }, server };
}

function rowDescription(names: string[]): Buffer {
  const size = 2 + names.reduce((n, name) => n + Buffer.byteLength(name) + 1 + 18, 0);
  const w = new FrameWriter(0x54, size);
  w.byte(names.length >> 8).byte(names.length & 0xff);
  for (const name of names) w.cstring(name).int32(0).byte(0).byte(0).int32(25).byte(0xff).byte(0xff).int32(-1).byte(0).byte(0);
  return w.done();
}

function dataRow(values: (string | null)[]): Buffer {
  const bufs = values.map((v) => (v === null ? null : Buffer.from(v)));
  const w = new FrameWriter(0x44, 2 + bufs.reduce((n, b) => n + 4 + (b?.length ?? 0), 0));
  w.byte(values.length >> 8).byte(values.length & 0xff);
  for (const b of bufs) (b ? w.int32(b.length).bytes(b) : w.int32(-1));
  return w.done();
}

describe('simpleQuery against a hostile server', () => {
  const servers: Server[] = [];
  afterAll(() => {
    for (const s of servers) s.close();
  });

  async function run(reply: Buffer, opts: { close?: boolean; dribble?: boolean } = {}) {
    const { conn: c, server } = await fakeBackend(reply, opts);
    servers.push(server);
    const outcome = await simpleQuery(c, 'SELECT 1', 2_000).then(
      (r) => ({ ok: true as const, r }),
      (e: unknown) => ({ ok: false as const, e }),
    );
    return { c, outcome };
  }

  it('reassembles a response dribbled byte by byte and keeps what follows ReadyForQuery', async () => {
    const extra = noticeResponse({ severity: 'NOTICE', code: '00000', message: 'later' });
    const reply = Buffer.concat([
      noticeResponse({ severity: 'NOTICE', code: '00000', message: 'hello' }),
      rowDescription(['a', 'b']),
      dataRow(['x', null]),
      commandComplete('SELECT 1'),
      readyForQuery('I'),
      extra,
    ]);
    const { c, outcome } = await run(reply, { dribble: true });
    expect(outcome).toEqual({ ok: true, r: { fields: ['a', 'b'], rows: [['x', null]] } });
    c.socket.destroy();
  });

  it('refuses a DataRow whose column count disagrees with RowDescription, destroying the socket', async () => {
    const { c, outcome } = await run(Buffer.concat([rowDescription(['a']), dataRow(['x', 'y']), commandComplete('SELECT 1'), readyForQuery('I')]));
    expect(outcome.ok).toBe(false);
    expect((outcome as { e: BackendError }).e.code).toBe('backend_protocol');
    expect(c.socket.destroyed).toBe(true);
  });

  it('reports an ErrorResponse followed by a close as the server error', async () => {
    const { outcome } = await run(errorResponse({ severity: 'FATAL', code: '57P01', message: 'bye' }), { close: true });
    expect((outcome as { e: BackendError }).e.sqlstate).toBe('57P01');
  });

  it('answers arbitrary server bytes with a result or a BackendError, never anything else (property)', async () => {
    const frame = fc.oneof(
      fc.constant(readyForQuery('I')),
      fc.constant(commandComplete('SELECT 1')),
      fc.constant(rowDescription(['a'])),
      fc.constant(dataRow(['v'])),
      fc.constant(errorResponse({ severity: 'ERROR', code: '42000', message: 'no' })),
      fc.uint8Array({ maxLength: 24 }).map((b) => Buffer.from(b)),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(frame, { maxLength: 6 }), fc.boolean(), async (frames, dribble) => {
        const { c, outcome } = await run(Buffer.concat(frames), { close: true, dribble });
        if (!outcome.ok) expect(outcome.e).toBeInstanceOf(BackendError);
        c.socket.destroy();
      }),
      { numRuns: 40 },
    );
  });
});

describe('loadCatalog', () => {
  it('reads relation metadata, kinds and live columns', () => {
    const users = rel('app.users');
    expect(users).toMatchObject({ schema: 'app', name: 'users', kind: 'table' });
    expect([...users.columns].map(([n, c]) => [n, c.name, c.typeOid])).toEqual([
      [1, 'id', 23],
      [2, 'email', 25],
      [3, 'password', 25],
      [4, 'name', 25],
    ]);
    expect(users.lineage).toBeUndefined();
    expect(rel('app.user_view').kind).toBe('view');
    expect(rel('app.user_mat').kind).toBe('matview');
    expect(rel('Mixed Case.Tbl').kind).toBe('table');
    const legacy = rel('app.legacy');
    expect([...legacy.columns].map(([n, c]) => [n, c.name])).toEqual([
      [1, 'a'],
      [3, 'b'],
    ]);
    for (const r of cat.relations.values()) expect(['pg_catalog', 'information_schema']).not.toContain(r.schema);
  });

  it('reports the backend search_path, user functions, and leaves the session search_path alone', async () => {
    expect(cat.searchPath).toEqual(['app', 'public']);
    expect(cat.userFunctions.has('app.mask_me')).toBe(true);
    expect(cat.userFunctions.has('mask_me')).toBe(true);
    expect(cat.userFunctions.has('lower')).toBe(false);
    expect((await simpleQuery(conn, 'SHOW search_path')).rows).toEqual([['app, public']]);
    expect((await simpleQuery(conn, 'SELECT 1')).rows).toEqual([['1']]);
  });

  it('marks plain and renamed view columns as column lineage', () => {
    const users = rel('app.users');
    const view = rel('app.user_view');
    expect(view.lineage!.get(attnum(view, 'id'))).toEqual({ kind: 'column', relation: users.oid, attnum: 1 });
    expect(view.lineage!.get(attnum(view, 'mail'))).toEqual({ kind: 'column', relation: users.oid, attnum: 2 });
    expect(view.lineage!.get(attnum(view, 'name'))).toEqual({ kind: 'column', relation: users.oid, attnum: 4 });
    const star = rel('app.star');
    for (const [n] of star.columns) expect(star.lineage!.get(n)).toEqual({ kind: 'column', relation: users.oid, attnum: n });
  });

  it('marks expression columns as derived from everything the view reads', () => {
    const view = rel('app.user_view');
    const lower = view.lineage!.get(attnum(view, 'lower_email'))!;
    expect(lower.kind).toBe('derived');
    expect(viewBases('app.user_view', 'lower_email')).toEqual(['app.users.email', 'app.users.id', 'app.users.name']);
    expect(viewBases('app.user_view', 'next_id')).toEqual(['app.users.email', 'app.users.id', 'app.users.name']);
    expect(viewBases('app.fn_view', 'm')).toEqual(['app.users.email', 'app.users.id']);
    expect(viewBases('app.fn_view', 'id')).toEqual(['app.users.id']);
  });

  it('follows views over views to base columns', () => {
    const v2 = rel('app.user_view2');
    expect(v2.lineage!.get(attnum(v2, 'mail'))).toEqual({ kind: 'column', relation: rel('app.user_view').oid, attnum: 2 });
    expect(viewBases('app.user_view2', 'mail')).toEqual(['app.users.email']);
    expect(viewBases('app.user_view2', 'who')).toEqual(['app.users.name']);
    expect(viewBases('app.user_view2', 'le')).toEqual(['app.users.email', 'app.users.id', 'app.users.name']);
  });

  it('treats set operations, joins and CTEs correctly', () => {
    expect(rel('app.all_emails').lineage!.get(1)!.kind).toBe('derived');
    expect(viewBases('app.all_emails', 'email')).toEqual(['app.admins.email', 'app.users.email']);
    expect(viewBases('app.joined', 'admin_email')).toEqual(['app.admins.email']);
    expect(viewBases('app.joined', 'password')).toEqual(['app.users.password']);
    // The CTE named "users" must not be mistaken for app.users: its "email" is the password.
    expect(rel('app.cte_view').lineage!.get(1)!.kind).toBe('derived');
    expect(viewBases('app.cte_view', 'email')).toContain('app.users.password');
  });

  it('counts whole-row references as every column of the relation', () => {
    const all = ['app.users.email', 'app.users.id', 'app.users.name', 'app.users.password'];
    expect(viewBases('app.whole', 'r')).toEqual(all);
    expect(viewBases('app.whole', 'id')).toEqual(['app.users.id']);
    expect(viewBases('app.json_rows', 'j')).toEqual(all);
    expect(viewBases('app.counted', 'n')).toEqual(all);
  });

  it('gives materialized views lineage too', () => {
    const users = rel('app.users');
    const mat = rel('app.user_mat');
    expect(mat.lineage!.get(attnum(mat, 'pw'))).toEqual({ kind: 'column', relation: users.oid, attnum: 3 });
    expect(viewBases('app.user_mat', 'shout')).toEqual(['app.users.id', 'app.users.name', 'app.users.password']);
  });

  it('keeps same-named relations of other schemas apart', () => {
    expect(viewBases('other.user_view', 'secret')).toEqual(['other.users.secret']);
    expect(rel('other.users').oid).not.toBe(rel('app.users').oid);
  });

  it('maps what RowDescription reports through the snapshot to the base columns', async () => {
    const client = pgClient(database);
    await client.connect();
    try {
      const expected: Record<string, Record<string, string[]>> = {
        'app.user_view2': { mail: ['app.users.email'], le: ['app.users.email', 'app.users.id', 'app.users.name'], who: ['app.users.name'] },
        'app.user_view': { id: ['app.users.id'], mail: ['app.users.email'], name: ['app.users.name'] },
        'app.user_mat': { id: ['app.users.id'], pw: ['app.users.password'] },
        'app.joined': { admin_email: ['app.admins.email'], password: ['app.users.password'] },
      };
      for (const [view, columns] of Object.entries(expected)) {
        const result = await client.query(`SELECT * FROM ${view}`);
        for (const f of result.fields) {
          if (!(f.name in columns)) continue;
          expect(f.tableID, `${view}.${f.name}`).toBe(rel(view).oid);
          expect(bases(f.tableID, f.columnID), `${view}.${f.name}`).toEqual(columns[f.name]);
        }
      }
    } finally {
      await client.end();
    }
  });
});

describe('loadCatalog with partitioned tables', () => {
  it('links every partition column to the parent column of the same name, whatever its attnum', () => {
    const parent = rel('app.events');
    expect(parent.kind).toBe('partitioned');
    expect(parent.lineage).toBeUndefined();
    const p2024 = rel('app.events_2024');
    expect([...p2024.columns].map(([n, c]) => [n, c.name])).toEqual([
      [1, 'note'],
      [3, 'email'],
      [4, 'id'],
    ]);
    expect(p2024.lineage!.get(3)).toEqual({ kind: 'column', relation: parent.oid, attnum: attnum(parent, 'email') });
    expect(p2024.lineage!.get(1)).toEqual({ kind: 'column', relation: parent.oid, attnum: attnum(parent, 'note') });
    expect(bases(p2024.oid, 3)).toEqual(['app.events.email']);
    expect(bases(p2024.oid, 4)).toEqual(['app.events.id']);
  });

  it('follows sub-partitions up to the root', () => {
    const sub = rel('app.events_2025');
    expect(sub.kind).toBe('partitioned');
    expect(sub.lineage!.get(attnum(sub, 'email'))).toEqual({ kind: 'column', relation: rel('app.events').oid, attnum: attnum(rel('app.events'), 'email') });
    const leaf = rel('app.events_2025_h1');
    expect(leaf.lineage!.get(attnum(leaf, 'email'))).toEqual({ kind: 'column', relation: sub.oid, attnum: attnum(sub, 'email') });
    expect(bases(leaf.oid, attnum(leaf, 'email'))).toEqual(['app.events.email']);
  });

  it('masks a partition column by a rule on the parent column', () => {
    const plan: MaskingPlan = {
      policies: ['pii'],
      columns: [{ pattern: 'app.events.email', spec: { strategy: 'redact' }, policy: 'pii' }],
      functions: [],
      indirect: 'deny',
      notifications: 'redact',
      maxValueBytes: 1024,
    };
    const masked = resolveMasking(plan, cat);
    for (const name of ['app.events', 'app.events_2024', 'app.events_2025', 'app.events_2025_h1']) {
      const r = rel(name);
      expect([...(masked.byOid.get(r.oid)?.keys() ?? [])], name).toEqual([attnum(r, 'email')]);
    }
  });

  it('leaves plain inheritance children as tables of their own', () => {
    expect(rel('app.child_plain').lineage).toBeUndefined();
    expect(viewBases('app.child_plain', 'email')).toEqual(['app.child_plain.email']);
  });

  it('maps what RowDescription reports for rows of a partitioned table to the parent columns', async () => {
    const client = pgClient(database);
    await client.connect();
    try {
      const seen = new Set<number>();
      for (const sql of ['SELECT * FROM app.events ORDER BY id', 'SELECT * FROM app.events_2024', 'SELECT email, note, id FROM app.events_2025_h1']) {
        const result = await client.query(sql);
        expect(result.rows.length, sql).toBeGreaterThan(0);
        for (const f of result.fields) {
          seen.add(f.tableID);
          expect(bases(f.tableID, f.columnID), `${sql}: ${f.name}`).toEqual([`app.events.${f.name}`]);
        }
      }
      expect(seen).toContain(rel('app.events_2024').oid);
      expect(seen).toContain(rel('app.events_2025_h1').oid);
    } finally {
      await client.end();
    }
  });
});

describe('resolveRelation', () => {
  it('resolves qualified names to exactly that relation', () => {
    expect(resolveRelation(cat, 'app.users')).toEqual([rel('app.users').oid]);
    expect(resolveRelation(cat, 'OTHER.Users')).toEqual([rel('other.users').oid]);
    expect(resolveRelation(cat, `${database}.app.users`)).toEqual([rel('app.users').oid]);
    expect(resolveRelation(cat, '"Mixed Case"."Tbl"')).toEqual([rel('Mixed Case.Tbl').oid]);
    expect(resolveRelation(cat, '"Mixed Case".tbl')).toEqual([]);
    expect(resolveRelation(cat, 'nope.users')).toEqual([]);
    expect(splitQualifiedName('Ünï.Tbl_1$ ')).toEqual(['Ünï', 'tbl_1$']);
    expect(splitQualifiedName(' app . "a""b" ')).toEqual(['app', 'a"b']);
  });

  it('puts the search_path match first, then other schemas conservatively', () => {
    expect(resolveRelation(cat, 'users')).toEqual([rel('app.users').oid, rel('other.users').oid]);
    expect(resolveRelation(cat, '"users"')).toEqual([rel('app.users').oid, rel('other.users').oid]);
    expect(resolveRelation(cat, 'user_view')).toEqual([rel('app.user_view').oid, rel('other.user_view').oid]);
    const shifted: CatalogSnapshot = { ...cat, searchPath: ['other', 'app'] };
    expect(resolveRelation(shifted, 'users')).toEqual([rel('other.users').oid, rel('app.users').oid]);
    expect(resolveRelation(cat, 'legacy')).toEqual([rel('app.legacy').oid]);
    expect(resolveRelation(cat, '"Users"')).toEqual([]);
  });

  it('refuses malformed names', () => {
    for (const bad of ['', '.', 'app.', '.users', '"unterminated', 'a b', 'app..users', '""', 'a.b.c.d', '1abc']) {
      expect(resolveRelation(cat, bad), bad).toEqual([]);
    }
  });

  it('round-trips any identifier through quoting (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.string({ minLength: 1 }).filter((s) => !s.includes('\0')), { minLength: 1, maxLength: 3 }), (parts) => {
        const written = parts.map((p) => `"${p.replaceAll('"', '""')}"`).join('.');
        expect(splitQualifiedName(written)).toEqual(parts);
      }),
    );
  });

  it('never throws on arbitrary text (property)', () => {
    fc.assert(
      fc.property(fc.string(), (s) => {
        expect(Array.isArray(resolveRelation(cat, s))).toBe(true);
      }),
    );
  });
});

describe('baseColumns', () => {
  it('returns a table column itself and survives lineage cycles', () => {
    const users = rel('app.users');
    expect(baseColumns(cat, users.oid, 2)).toEqual([{ relation: users.oid, attnum: 2 }]);
    const a = { oid: 1, schema: 's', name: 'a', kind: 'view' as const, columns: new Map([[1, { name: 'x', typeOid: 25 }]]) };
    const cyclic: CatalogSnapshot = {
      relations: new Map<number, CatalogRelation>([
        [1, { ...a, lineage: new Map([[1, { kind: 'derived' as const, sources: [{ relation: 2, attnum: 1 }, { relation: 3, attnum: 1 }] }]]) }],
        [2, { ...a, oid: 2, name: 'b', lineage: new Map([[1, { kind: 'column' as const, relation: 1, attnum: 1 }]]) }],
        [3, { ...a, oid: 3, name: 't', kind: 'table' as const }],
      ]),
      byName: new Map(),
      userFunctions: new Set(),
      builtinFunctions: new Set(),
      searchPath: [],
    };
    expect(baseColumns(cyclic, 1, 1)).toEqual([{ relation: 3, attnum: 1 }]);
    expect(baseColumns(cyclic, 99, 4)).toEqual([{ relation: 99, attnum: 4 }]);
  });
});
