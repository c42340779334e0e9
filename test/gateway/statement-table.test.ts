import fc from 'fast-check';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { classify, initSqlParser } from '../../src/sql/index.js';
import { pgClient, psql } from '../support/clients.js';
import { startGateway, type TestGateway } from '../support/gateway.js';
import { testPostgres } from '../support/pg-env.js';
import { ALLOWED, DENIED, READ_POOL, SCHEMA, WRITE_POOL, type Grant, type Rule, type StatementCase } from './statement-table.fixtures.js';

const S = SCHEMA;
const CHANGED = `select relname, n_tup_ins + n_tup_upd + n_tup_del as changed from pg_stat_xact_user_tables where n_tup_ins + n_tup_upd + n_tup_del > 0`;

let t: TestGateway;
let su: pg.Client;
let token: string;
const sessions = new Map<Grant, pg.Client>();

function direct(role: { user: string; password: string }): pg.Client {
  const env = testPostgres();
  return new pg.Client({ host: env.host, port: env.port, user: role.user, password: role.password, database: env.database, ssl: { rejectUnauthorized: false } });
}

beforeAll(async () => {
  await initSqlParser();
  t = await startGateway();
  const env = testPostgres();
  su = direct(env.superuser);
  await su.connect();
  const { reader, writer, migrator } = env.roles;
  await su.query(`drop schema if exists ${S} cascade`);
  await su.query(`create schema ${S}`);
  await su.query(`create table ${S}.items (id int primary key, name text, qty int)`);
  await su.query(`insert into ${S}.items select g, 'item ' || g, g from generate_series(1, 20) g`);
  await su.query(`create table ${S}.log (id int, note text)`);
  await su.query(`insert into ${S}.log select g, 'note ' || g from generate_series(1, 5) g`);
  await su.query(`create table ${S}."Mixed Case" ("id" int, "Val" text)`);
  await su.query(`insert into ${S}."Mixed Case" values (1, 'a'), (2, 'b'), (3, 'c')`);
  await su.query(`create table ${S}.ddl_owned (id int)`);
  await su.query(`insert into ${S}.ddl_owned values (1), (2), (3)`);
  await su.query(`alter table ${S}.ddl_owned owner to ${migrator.user}`);
  await su.query(`grant usage on schema ${S} to ${reader.user}, ${writer.user}`);
  await su.query(`grant usage, create on schema ${S} to ${migrator.user}`);
  await su.query(`grant select on all tables in schema ${S} to ${reader.user}`);
  await su.query(`grant select, insert, update, delete on all tables in schema ${S} to ${writer.user}, ${migrator.user}`);
  token = await t.token('stella', ['dba']);
  for (const grant of ['read', 'write', 'ddl'] as const) sessions.set(grant, await session(grant));
});

afterAll(async () => {
  await Promise.all([...sessions.values()].map((c) => c.end().catch(() => undefined)));
  await su?.query(`drop schema if exists ${S} cascade`).catch(() => undefined);
  await su?.end();
  await t?.stop();
});

async function session(grant: Grant): Promise<pg.Client> {
  const c = await pgClient(t, grant, token);
  c.on('error', () => undefined);
  return c;
}

const bare = (name: string) => name.slice(name.lastIndexOf('.') + 1);
const sorted = (names: Iterable<string>) => [...new Set(names)].sort();

/** The tables the classifier says the text writes, without schema. */
function classifiedWrites(sql: string): string[] {
  const c = classify(sql);
  if (!c.ok) throw new Error(`classifier refused ${sql}: ${c.message}`);
  return sorted(c.statements.flatMap((s) => s.tablesWritten.map(bare)));
}

async function run(c: pg.Client, sc: StatementCase): Promise<unknown> {
  return sc.params ? c.query(sc.sql, sc.params as unknown[]) : c.query(sc.sql);
}

async function failure(p: Promise<unknown>): Promise<{ code?: string; message: string } | undefined> {
  return p.then(
    () => undefined,
    (e: unknown) => e as { code?: string; message: string },
  );
}

/** What each rule's refusal must say: the rule by name, or for grants the need and the session's grant. */
function ruleMessage(rule: Rule, grant: Grant): RegExp {
  if (rule === 'sluice-grants') return new RegExp(`^sluice: .*(needs grant \\w+; this session has grant ${grant}|is not allowed by any grant)`);
  return new RegExp(`^sluice: .*denied by rule ${rule}`);
}

/** COPY FROM STDIN needs a client that streams data: psql, inside a rolled-back transaction. */
async function copyIn(sc: StatementCase): Promise<string[]> {
  const counts = (tag: string) => `select '${tag}:' || changed || ':' || relname from (${CHANGED}) c;`;
  const script = ['begin;', counts('before'), `${sc.sql};`, `${sc.copyData}\\.`, counts('after'), 'rollback;', ''].join('\n');
  const r = await psql(t, t.url(sc.grant), token, ['-v', 'VERBOSITY=verbose'], script);
  expect(r.stderr, sc.sql).toBe('');
  expect(r.code).toBe(0);
  const read = (tag: string) =>
    new Map(
      r.stdout
        .split('\n')
        .filter((l) => l.startsWith(`${tag}:`))
        .map((l) => {
          const [, n, ...rel] = l.split(':');
          return [rel.join(':'), Number(n)] as const;
        }),
    );
  const before = read('before');
  return [...read('after')].filter(([rel, n]) => n > (before.get(rel) ?? 0)).map(([rel]) => rel);
}

/**
 * Rows changed per table as this backend counts them. PostgreSQL 15 keeps
 * counts of earlier transactions in the backend until it flushes them, so
 * a statement's changes are the increase across it.
 */
async function changeCounts(c: pg.Client): Promise<Map<string, number>> {
  const rows = (await c.query(CHANGED)).rows as Array<{ relname: string; changed: string }>;
  return new Map(rows.map((r) => [r.relname, Number(r.changed)]));
}

const label = (sc: StatementCase) => `[${sc.grant}] ${sc.sql.replace(/\s+/g, ' ')}${sc.params ? ` (params ${JSON.stringify(sc.params)})` : ''}`;

describe('the statement table', () => {
  it('has at least 150 statements, at least half of them allowed', () => {
    expect(ALLOWED.length + DENIED.length).toBeGreaterThanOrEqual(150);
    expect(ALLOWED.length).toBeGreaterThanOrEqual(DENIED.length);
    expect(new Set([...ALLOWED, ...DENIED].map(label)).size).toBe(ALLOWED.length + DENIED.length);
  });

  it.each(ALLOWED.filter((sc) => sc.writes !== undefined && sc.copyData === undefined).map((sc) => [label(sc), sc] as const))(
    'the classifier names the tables written by %s',
    (_l, sc) => {
      expect(classifiedWrites(sc.factsFrom ?? sc.sql)).toEqual(sorted(sc.writes!));
    },
  );
});

describe('allowed statements run through Sluice and succeed', () => {
  it.each(ALLOWED.map((sc) => [label(sc), sc] as const))('%s', async (_l, sc) => {
    if (sc.copyData !== undefined) {
      const changed = await copyIn(sc);
      expect(sorted(changed)).toEqual(sorted(sc.writes ?? []));
      expect(classifiedWrites(sc.sql)).toEqual(sorted(changed));
      return;
    }
    const c = sessions.get(sc.grant)!;
    for (const s of sc.setup ?? []) await c.query(s);
    if (sc.standalone) {
      const err = await failure(run(c, sc));
      await c.query('rollback');
      expect(err?.message).toBeUndefined();
      return;
    }
    await c.query('begin');
    try {
      const before = await changeCounts(c);
      const err = await failure(run(c, sc));
      expect(err?.message, sc.sql).toBeUndefined();
      const after = await changeCounts(c);
      const changed = [...after].filter(([rel, n]) => n > (before.get(rel) ?? 0)).map(([rel]) => rel);
      // What PostgreSQL did is the truth; the classifier's facts must match it.
      expect(sorted(changed)).toEqual(sorted(sc.writes ?? []));
      if (sc.writes !== undefined) expect(classifiedWrites(sc.factsFrom ?? sc.sql)).toEqual(sorted(changed));
    } finally {
      await c.query('rollback');
    }
  });
});

describe('denied statements are refused with 42501 naming the rule', () => {
  it.each(DENIED.map((sc) => [label(sc), sc] as const))('%s', async (_l, sc) => {
    const c = sessions.get(sc.grant)!;
    await c.query('begin');
    try {
      const err = await failure(run(c, sc));
      expect(err, `${sc.sql} was expected to be denied`).toBeDefined();
      expect(err!.code).toBe('42501');
      expect(err!.message).toMatch(ruleMessage(sc.deny!, sc.grant));
      if (sc.reason) expect(err!.message).toContain(sc.reason);
    } finally {
      await c.query('rollback');
    }
    expect((await c.query('select 1 as one')).rows).toEqual([{ one: 1 }]);
  });
});

async function fingerprint(): Promise<string> {
  const parts: string[] = [];
  for (const table of ['items', 'log', '"Mixed Case"', 'ddl_owned']) {
    const r = await su.query(`select count(*)::int as n, coalesce(sum(hashtext(x::text)::bigint), 0)::text as h from ${S}.${table} x`);
    parts.push(`${table}:${r.rows[0].n}:${r.rows[0].h}`);
  }
  const rel = await su.query(`select string_agg(relname, ',' order by relname) as r from pg_class where relnamespace = '${S}'::regnamespace`);
  return `${parts.join('|')}|${rel.rows[0].r}`;
}

describe('defense in depth: the database refuses the reader role on its own', () => {
  const statements = [
    `delete from ${S}.items where id = 1`,
    `drop table ${S}.items`,
    `truncate ${S}.log`,
    `insert into ${S}.log values (1, 'x')`,
    `update ${S}."Mixed Case" set "Val" = 'x'`,
    `create table ${S}.t_direct (id int)`,
    `select pg_read_file('/etc/passwd')`,
    `set role postgres`,
  ];

  it.each(statements)('Sluice denies and PostgreSQL as the reader refuses: %s', async (sql) => {
    const env = testPostgres();
    const before = await fingerprint();
    const viaSluice = await failure(sessions.get('read')!.query(sql));
    expect(viaSluice).toMatchObject({ code: '42501', message: expect.stringMatching(/^sluice: /) });
    const reader = direct(env.roles.reader);
    reader.on('error', () => undefined);
    await reader.connect();
    try {
      const sql2 = sql === 'set role postgres' ? `set role "${env.superuser.user}"` : sql;
      const refused = await failure(reader.query(sql2));
      expect(refused, `${sql2} ran directly as the reader`).toBeDefined();
      expect(refused!.code).toBe('42501');
      expect(refused!.message).toMatch(/permission denied|must be owner/);
    } finally {
      await reader.end();
    }
    expect(await fingerprint()).toBe(before);
  });
});

describe('generated statement sequences under the read grant', () => {
  it('never change the tables, and the session stays usable', async () => {
    const before = await fingerprint();
    const statement = fc.oneof(fc.constantFrom(...READ_POOL), fc.constantFrom(...WRITE_POOL));
    // A message is one statement or several joined, so denials inside multi-statement messages are generated too.
    const message = fc.array(statement, { minLength: 1, maxLength: 3 }).map((parts) => parts.join('; '));
    await fc.assert(
      fc.asyncProperty(fc.array(message, { minLength: 1, maxLength: 8 }), async (messages) => {
        const c = await session('read');
        try {
          for (const m of messages) await failure(c.query(m));
          await failure(c.query('rollback'));
          expect((await c.query('select 1 as one')).rows).toEqual([{ one: 1 }]);
        } finally {
          await c.end();
        }
        expect(await fingerprint()).toBe(before);
      }),
      { numRuns: 25 },
    );
  });
});
