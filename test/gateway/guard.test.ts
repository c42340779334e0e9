import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { serialize } from 'pg-protocol';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { AuditEvent } from '../../src/events/types.js';
import { pgClient, psql } from '../support/clients.js';
import { startGateway, type TestGateway } from '../support/gateway.js';
import { testPostgres } from '../support/pg-env.js';
import { errorFields, openSession, type BackendMessage } from '../support/raw-client.js';

let t: TestGateway;
let su: pg.Client;
let dba: string;
let dev: string;
const table = `guard_probe_${randomUUID().slice(0, 8)}`;
const open: pg.Client[] = [];

beforeAll(async () => {
  t = await startGateway();
  const env = testPostgres();
  su = new pg.Client({ host: env.host, port: env.port, user: env.superuser.user, password: env.superuser.password, database: env.database });
  await su.connect();
  await su.query(`create table ${table} (id int primary key, note text)`);
  await su.query(`insert into ${table} select g, 'row ' || g from generate_series(1, 10) g`);
  await su.query(`grant select on ${table} to ${env.roles.reader.user}`);
  await su.query(`grant select, insert, update, delete on ${table} to ${env.roles.writer.user}`);
  await su.query(`grant create on schema public to ${env.roles.migrator.user}`);
  dba = await t.token('alice', ['dba']);
  dev = await t.token('dave', ['dev']);
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.end().catch(() => undefined)));
});
afterAll(async () => {
  await su?.query(`drop table if exists ${table}`).catch(() => undefined);
  await su?.end();
  await t?.stop();
});

async function connect(grant: string, token: string): Promise<pg.Client> {
  const c = await pgClient(t, grant, token);
  c.on('error', () => undefined);
  open.push(c);
  return c;
}

const customerOne = async () => (await su.query('select name from customers where id = 1')).rows;
const probeCount = async () => Number((await su.query(`select count(*) as n from ${table}`)).rows[0].n);

/** The statement.denied event recorded for a statement text containing `marker`. */
async function denial(marker: string): Promise<AuditEvent> {
  return vi.waitFor(() => {
    const denied = t.gw.store.query({ types: ['statement.denied'], text: marker, limit: 5 });
    expect(denied).toHaveLength(1);
    return denied[0];
  });
}

async function rejection(p: Promise<unknown>): Promise<{ code?: string; message: string }> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e as { code?: string; message: string },
  );
  expect(err, 'the statement was expected to fail').toBeDefined();
  return err!;
}

describe('statements denied by the guard, simple protocol (psql)', () => {
  it('refuses a DELETE in a read session with 42501, leaves the row, and keeps the session usable', async () => {
    const before = await customerOne();
    const r = await psql(t, t.url('read'), dev, ['-v', 'ON_ERROR_STOP=0', '-v', 'VERBOSITY=verbose'], 'delete from customers where id = 1 /* g-del-1 */;\nselect 1;\n');
    expect(r.stderr).toContain('ERROR:  42501: sluice: DELETE needs grant write; this session has grant read');
    expect(r.stderr).not.toContain('sluice_denied');
    expect(r.stdout.trim()).toBe('1');
    expect(await customerOne()).toEqual(before);
    const e = await denial('g-del-1');
    expect(e.data).toMatchObject({ rule: 'sluice-grants', reason: 'sluice: DELETE needs grant write; this session has grant read', protocol: 'simple' });
    const started = t.gw.store.query({ types: ['statement.started'], text: 'g-del-1', limit: 1 });
    expect(started[0].data).toMatchObject({ text: 'delete from customers where id = 1 /* g-del-1 */;', statement: e.data.statement });
    await vi.waitFor(() => {
      const completed = t.gw.store.query({ types: ['statement.completed'], sessionId: e.sessionId, limit: 10 }).find((c) => c.data.statement === e.data.statement);
      expect(completed?.data).toMatchObject({ sqlstate: '42501', error: 'sluice: DELETE needs grant write; this session has grant read' });
    });
  });

  it('leaves an explicit transaction failed exactly as PostgreSQL does, until ROLLBACK', async () => {
    const script = ['begin;', `insert into ${table} values (100, 'kept?');`, 'drop table customers /* g-tx-1 */;', 'select 2;', 'rollback;', 'select 3;', ''].join('\n');
    const r = await psql(t, t.url('write'), dba, ['-v', 'ON_ERROR_STOP=0', '-v', 'VERBOSITY=verbose'], script);
    expect(r.stderr).toContain('ERROR:  42501: sluice: DROP TABLE needs grant ddl; this session has grant write');
    expect(r.stderr).toContain('ERROR:  25P02: current transaction is aborted, commands ignored until end of transaction block');
    expect(r.stdout.trim().split('\n')).toEqual(['BEGIN', 'INSERT 0 1', 'ROLLBACK', '3']);
    expect(await probeCount()).toBe(10);
    expect((await su.query("select count(*) as n from customers")).rows[0].n).toBe('100');
    expect((await denial('g-tx-1')).data).toMatchObject({ rule: 'sluice-grants' });
  });

  it('judges a message with several statements whole: one denial refuses all of it', async () => {
    const r = await psql(t, t.url('read'), dev, ['-v', 'ON_ERROR_STOP=0', '-c', `select 1; delete from customers /* g-multi-1 */`]);
    expect(r.stderr).toContain('ERROR:  sluice: DELETE needs grant write; this session has grant read');
    expect(r.stdout).toBe('');
    expect((await su.query('select count(*) as n from customers')).rows[0].n).toBe('100');
    await denial('g-multi-1');
  });
});

describe('statements denied by the guard, extended protocol (pg)', () => {
  it('refuses a parameterised DELETE at Parse with 42501 and keeps the session usable', async () => {
    const c = await connect('read', dev);
    const before = await customerOne();
    const err = await rejection(c.query('delete from customers where id = $1 /* g-ext-1 */', [1]));
    expect(err).toMatchObject({ code: '42501', message: 'sluice: DELETE needs grant write; this session has grant read' });
    expect((await c.query('select 1 as one')).rows).toEqual([{ one: 1 }]);
    expect(await customerOne()).toEqual(before);
    expect((await denial('g-ext-1')).data).toMatchObject({ rule: 'sluice-grants', protocol: 'extended' });
  });

  it('keeps queued queries in step when one of them is denied', async () => {
    const c = await connect('read', dev);
    const results = await Promise.allSettled([
      c.query('select $1::int as n', [1]),
      c.query('delete from customers where id = $1 /* g-queue-1 */', [2]),
      c.query('select $1::int as n', [3]),
      c.query('select 4 as n'),
    ]);
    expect(results.map((r) => (r.status === 'fulfilled' ? r.value.rows[0].n : (r.reason as { code: string }).code))).toEqual([1, '42501', 3, 4]);
    await denial('g-queue-1');
  });

  it('fails a pipelined unit on the backend where the denied Parse stood, and the next unit runs', async () => {
    const s = await openSession(t.host, t.port, { user: 'write', database: 'orders', application_name: 'guard-pipeline' }, dba);
    try {
      s.client.write(
        Buffer.concat([
          serialize.parse({ text: `insert into ${table} values (200, 'rolled back')` }),
          serialize.bind({}),
          serialize.execute({}),
          serialize.parse({ name: 'dropper', text: 'drop table customers /* g-pipe-1 */' }),
          serialize.bind({ statement: 'dropper' }),
          serialize.execute({}),
          serialize.sync(),
          serialize.parse({ text: 'select 7' }),
          serialize.bind({}),
          serialize.execute({}),
          serialize.sync(),
        ]),
      );
      const first = await s.client.until('Z');
      expect(first.map((m) => m.type)).toEqual(['1', '2', 'C', 'E', 'Z']);
      expect(errorFields(first[3])).toMatchObject({ C: '42501', M: 'sluice: DROP TABLE needs grant ddl; this session has grant write' });
      const second: BackendMessage[] = await s.client.until('Z');
      expect(second.map((m) => m.type)).toEqual(['1', '2', 'D', 'C', 'Z']);
      expect(await probeCount()).toBe(10);
      expect((await denial('g-pipe-1')).data).toMatchObject({ statementName: 'dropper' });
    } finally {
      s.client.destroy();
    }
  });
});

describe('replacing the backend error for a denial inside a large response', () => {
  it('replaces it wherever the backend stream is cut, and forwards every other byte', async () => {
    const s = await openSession(t.host, t.port, { user: 'read', database: 'orders', application_name: 'guard-splice' }, dev);
    try {
      const units = Array.from({ length: 64 }, (_, i) =>
        Buffer.concat([
          serialize.parse({ text: `select repeat('x', ${7000 + i * 37}) as filler` }),
          serialize.bind({}),
          serialize.execute({}),
          serialize.parse({ text: `delete from customers where id = ${i + 1} /* g-splice */` }),
          serialize.bind({}),
          serialize.execute({}),
          serialize.sync(),
        ]),
      );
      s.client.write(Buffer.concat(units));
      for (let i = 0; i < units.length; i++) {
        const reply = await s.client.until('Z');
        expect(reply.map((m) => m.type)).toEqual(['1', '2', 'D', 'C', 'E', 'Z']);
        expect(reply[2].payload.length).toBe(2 + 4 + 7000 + i * 37);
        expect(errorFields(reply[4])).toEqual({ S: 'ERROR', V: 'ERROR', C: '42501', M: 'sluice: DELETE needs grant write; this session has grant read' });
      }
      expect((await su.query('select count(*) as n from customers')).rows[0].n).toBe('100');
    } finally {
      s.client.destroy();
    }
  });
});

describe('what the guard refuses whatever the grant', () => {
  it('refuses server-file functions for a dba through the built-in deny list', async () => {
    const c = await connect('ddl', dba);
    const err = await rejection(c.query("select pg_read_file('/etc/passwd') /* g-file-1 */"));
    expect(err.code).toBe('42501');
    expect((await denial('g-file-1')).data).toMatchObject({ rule: 'sluice-default-functions' });
  });

  it('refuses SET ROLE', async () => {
    const c = await connect('ddl', dba);
    const err = await rejection(c.query('set role postgres /* g-role-1 */'));
    expect(err.code).toBe('42501');
    expect((await c.query('select current_user as u')).rows[0].u).toBe(t.pg.roles.migrator.user);
    await denial('g-role-1');
  });

  it('refuses unparseable text', async () => {
    const c = await connect('read', dev);
    const err = await rejection(c.query('selec 1 /* g-parse-1 */'));
    expect(err.code).toBe('42501');
    expect(err.message).toContain('denied by rule sluice-unparseable');
    expect((await denial('g-parse-1')).data).toMatchObject({ rule: 'sluice-unparseable' });
  });
});

describe('effects, not first keywords', () => {
  it('refuses a data-modifying WITH in a read session', async () => {
    const c = await connect('read', dev);
    const err = await rejection(c.query(`with d as (delete from ${table} returning id) select count(*) from d /* g-cte-1 */`));
    expect(err.code).toBe('42501');
    expect(await probeCount()).toBe(10);
    await denial('g-cte-1');
  });

  it('judges EXECUTE by the body of its PREPARE', async () => {
    const c = await connect('read', dev);
    const prep = await rejection(c.query(`prepare d as delete from ${table} /* g-prep-1 */`));
    expect(prep.code).toBe('42501');
    const exec = await rejection(c.query('execute d /* g-exec-1 */'));
    expect(exec.code).toBe('42501');
    await denial('g-prep-1');
    await denial('g-exec-1');
    await c.query(`prepare s as select count(*)::int as n from ${table}`);
    expect((await c.query('execute s')).rows).toEqual([{ n: 10 }]);
    expect(await probeCount()).toBe(10);
  });

  it('judges EXECUTE of an allowed PREPARE by its body under the session grant', async () => {
    const w = await connect('write', dba);
    await w.query(`prepare ins(int) as insert into ${table} values ($1, 'prepared')`);
    await w.query('execute ins(300)');
    expect(await probeCount()).toBe(11);
    await w.query('deallocate ins');
    const err = await rejection(w.query('execute ins(301) /* g-exec-2 */'));
    expect(err.code).toBe('42501');
    await su.query(`delete from ${table} where id = 300`);
  });
});

describe('statements each grant allows run normally', () => {
  it('read selects, write changes rows, ddl creates and drops, each recording the deciding rule', async () => {
    const r = await connect('read', dev);
    expect((await r.query(`select count(*)::int as n from ${table} /* g-ok-read */`)).rows).toEqual([{ n: 10 }]);
    expect((await r.query('show transaction_isolation')).rows).toHaveLength(1);
    const w = await connect('write', dba);
    await w.query('begin');
    await w.query(`update ${table} set note = 'changed' where id = $1`, [1]);
    await w.query('rollback');
    await w.query(`insert into ${table} values (400, 'x')`);
    await w.query(`delete from ${table} where id = 400`);
    const d = await connect('ddl', dba);
    const created = `guard_ddl_${randomUUID().slice(0, 8)}`;
    await d.query(`create table ${created} (id int)`);
    await d.query(`alter table ${created} add column note text`);
    await d.query(`drop table ${created}`);
    expect(await probeCount()).toBe(10);
    await vi.waitFor(() => {
      const started = t.gw.store.query({ types: ['statement.started'], text: 'g-ok-read', limit: 1 });
      expect(started[0].data).toMatchObject({ rule: 'sluice-grants' });
    });
  });
});

describe('SQL-level prepared statements follow what the backend did', () => {
  it('keeps judging EXECUTE by the body the backend still holds after a DEALLOCATE that failed', async () => {
    const c = await connect('read', dev);
    await c.query('prepare kept as select 41 + 1 as n');
    await c.query('begin');
    await expect(c.query('select 1/0')).rejects.toMatchObject({ code: '22012' });
    await expect(c.query('deallocate kept')).rejects.toMatchObject({ code: '25P02' });
    await c.query('rollback');
    expect((await c.query('execute kept')).rows).toEqual([{ n: 42 }]);
  });

  it('does not believe a PREPARE the backend refused', async () => {
    const c = await connect('read', dev);
    await c.query('begin');
    await expect(c.query('select 1/0')).rejects.toMatchObject({ code: '22012' });
    await expect(c.query('prepare never as select 1')).rejects.toMatchObject({ code: '25P02' });
    await c.query('rollback');
    await expect(c.query('execute never')).rejects.toMatchObject({ code: '42501', message: expect.stringContaining('sluice-opaque') });
  });
});
