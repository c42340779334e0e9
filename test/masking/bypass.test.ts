import { createHash } from 'node:crypto';
import type pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { maskText, REDACTED } from '../../src/masking/strategies.js';
import { psql } from '../support/clients.js';
import { startMaskingFixture, ROWS, type MaskingFixture, type UserRow } from './fixture.js';
import { errorText, leakScanner, resultText, type LabelledSecret, type LeakScan } from './leak-scan.js';

/**
 * Hostile statements against the masked `users` table, its views and the
 * leak() function, run as the masked CI machine through the real gateway
 * and PostgreSQL, with `indirect: deny` and with `indirect: mask`. Every
 * statement must either be refused as masking (42501) or return nothing
 * that reveals a raw value in any encoding an attacker could choose.
 */

type Mode = 'deny' | 'mask';

/**
 * How a case must end: `pred` uses a masked column to pick or order rows,
 * refused in both modes (so are set operations, which compare values, and
 * user-defined functions, whose results can be filtered); `ind` reads one indirectly, refused under
 * `indirect: deny` and run fully masked under `indirect: mask`; `write`
 * stores what it reads (a table, a view), refused in both modes (by masking or by the grant);
 * `ok` selects masked columns as themselves, so it runs and comes back
 * masked; `opaque` runs SQL given as text, refused in both modes as a
 * statement whose effect cannot be judged.
 */
type Kind = 'pred' | 'ind' | 'write' | 'opaque' | 'ok';

interface Case {
  readonly sql: string;
  readonly kind: Kind;
  /** Statements run first on the same session (search_path, BEGIN). */
  readonly setup?: readonly string[];
  readonly grant?: 'read' | 'write';
  /** Sent through psql rather than pg (COPY TO STDOUT). */
  readonly psql?: boolean;
  /** Also sent through psql, and through the extended protocol (pg with a named statement). */
  readonly more?: boolean;
  /** Under `indirect: mask` it runs and PostgreSQL itself fails it (a cast of a masked value): the error must not echo the value. */
  readonly fails?: boolean;
  /** The exempt DBA runs it and must see a raw value (proves the SQL is valid). */
  readonly dba?: 'raw' | 'runs';
}

const S = 'S';

/** Statements over schema `S`, replaced by the fixture's schema at run time. */
const CASES: readonly Case[] = [
  // aliases, quoted identifiers, qualification
  { sql: `select email as e, password as "P", api_key k, card from S.users`, kind: 'ok', more: true, dba: 'raw' },
  { sql: `select "email", "password" from "S"."users"`, kind: 'ok' },
  { sql: `select u."email" from S.users as u where u.id = 3`, kind: 'ok' },
  { sql: `select email from users`, kind: 'ok', setup: [`set search_path to S`] },
  { sql: `select id from users where email like 'user1%'`, kind: 'pred', setup: [`set search_path to S`], more: true },
  { sql: `select lower(email) from users`, kind: 'ind', setup: [`set search_path to S, public`] },
  { sql: `select  /* email */ email -- , lower(email)\n from S.users`, kind: 'ok' },
  { sql: `/* hi */ select\tLOWER ( EMAIL ) from S.USERS`, kind: 'ind' },
  // casts
  { sql: `select email::bytea from S.users`, kind: 'ind', more: true, dba: 'raw' },
  { sql: `select password::text from S.users`, kind: 'ind' },
  { sql: `select to_json(email)::text from S.users`, kind: 'ind' },
  { sql: `select cast(api_key as varchar(100)) from S.users`, kind: 'ind' },
  { sql: `select card::char(30) from S.users`, kind: 'ind' },
  { sql: `select password::int from S.users`, kind: 'ind', fails: true },
  { sql: `select api_key::json from S.users`, kind: 'ind', fails: true },
  { sql: `select api_key::regclass from S.users`, kind: 'ind', fails: true },
  { sql: `select to_date(password, 'YYYY') from S.users`, kind: 'ind', fails: true },
  { sql: `select ('[' || api_key || ']')::jsonb from S.users`, kind: 'ind', fails: true },
    // functions and encodings
  { sql: `select encode(convert_to(email, 'UTF8'), 'base64') from S.users`, kind: 'ind', dba: 'raw' },
  { sql: `select encode(password::bytea, 'hex') from S.users`, kind: 'ind', more: true, dba: 'raw' },
  { sql: `select decode(encode(api_key::bytea, 'escape'), 'escape') from S.users`, kind: 'ind' },
  { sql: `select md5(email) from S.users`, kind: 'ind', dba: 'raw' },
  { sql: `select sha256(password::bytea) from S.users`, kind: 'ind', dba: 'raw' },
  { sql: `select substr(email, 1, 100), left(password, 100), right(card, 100) from S.users`, kind: 'ind' },
  { sql: `select reverse(email) from S.users`, kind: 'ind', dba: 'raw' },
  { sql: `select translate(email, '@', '#'), regexp_replace(password, '-', '+', 'g') from S.users`, kind: 'ind' },
  { sql: `select overlay(card placing 'x' from 1 for 0) from S.users`, kind: 'ind' },
  { sql: `select format('%s', email), concat(password, ''), api_key || '' from S.users`, kind: 'ind', more: true },
  { sql: `select to_hex(ascii(email)), position('@' in email), strpos(password, '-') from S.users`, kind: 'ind' },
  { sql: `select length(email), octet_length(password) from S.users`, kind: 'ind' },
  { sql: `select upper(email), initcap(password) from S.users`, kind: 'ind', dba: 'raw' },
  { sql: `select quote_literal(email), quote_ident(password) from S.users`, kind: 'ind' },
  // whole-row references
  { sql: `select u from S.users u`, kind: 'ind', dba: 'raw' },
  { sql: `select u.* from S.users u`, kind: 'ok' },
  { sql: `select row_to_json(u) from S.users u`, kind: 'ind', more: true, dba: 'raw' },
  { sql: `select to_json(u), to_jsonb(u) from S.users u`, kind: 'ind' },
  { sql: `select json_build_object('e', email, 'p', password) from S.users`, kind: 'ind', dba: 'raw' },
  { sql: `select jsonb_populate_record(null::S.users, to_jsonb(u)) from S.users u`, kind: 'ind' },
  { sql: `select (jsonb_populate_record(null::S.users, to_jsonb(u))).email from S.users u`, kind: 'ind' },
  { sql: `select row(u.*)::text from S.users u`, kind: 'ind', dba: 'raw' },
  { sql: `select (u).email from S.users u`, kind: 'ind' },
  { sql: `select array[u.email, u.password] from S.users u`, kind: 'ind', dba: 'raw' },
  { sql: `select jsonb_each_text(to_jsonb(u)) from S.users u`, kind: 'ind' },
  { sql: `select j.* from S.users u, jsonb_each_text(to_jsonb(u)) j`, kind: 'ind' },
  // aggregation into one value
  { sql: `select json_agg(email) from S.users`, kind: 'ind', dba: 'raw' },
  { sql: `select jsonb_agg(u) from S.users u`, kind: 'ind' },
  { sql: `select array_agg(password) from S.users`, kind: 'ind' },
  { sql: `select string_agg(api_key, ',') from S.users`, kind: 'ind', more: true },
  { sql: `select xmlagg(xmlelement(name e, email)) from S.users`, kind: 'ind', dba: 'raw' },
  { sql: `select min(email), max(password) from S.users`, kind: 'ind', dba: 'raw' },
  { sql: `select count(distinct email) from S.users`, kind: 'ind' },
  { sql: `select bool_or(email like 'user1%') from S.users`, kind: 'ind' },
  { sql: `select count(*) filter (where email like 'user1%') from S.users`, kind: 'ind' },
  // predicates as oracles
  { sql: `select id from S.users where email = 'user1@example.com'`, kind: 'pred', dba: 'runs' },
  { sql: `select id from S.users where password like 'pw-1-%'`, kind: 'pred', more: true },
  { sql: `select u.id from S.users u join S.users v on u.email = v.email`, kind: 'pred' },
  { sql: `select u.id from S.users u join customers c on c.email = u.email`, kind: 'pred' },
  { sql: `select count(*) from S.users group by id having max(email) > 'user2'`, kind: 'pred' },
  { sql: `select id from S.users order by email`, kind: 'pred', dba: 'runs' },
  { sql: `select email, id from S.users order by 1`, kind: 'pred' },
  { sql: `select card as c, id from S.users order by c desc`, kind: 'pred' },
  { sql: `select count(*) from S.users group by password`, kind: 'pred' },
  { sql: `select distinct on (card) id from S.users`, kind: 'pred' },
  { sql: `select id, row_number() over (partition by card) from S.users`, kind: 'pred' },
  { sql: `select id, rank() over (order by email) from S.users`, kind: 'pred' },
  { sql: `select id, case when email like 'user1%' then 1 else 0 end from S.users`, kind: 'ind' },
  { sql: `select id from S.users u where exists (select 1 from S.users v where v.id = u.id and v.email like 'u%')`, kind: 'pred' },
  { sql: `select id from S.users where id in (select id from S.users where api_key like 'key_1_%')`, kind: 'pred' },
  { sql: `select id from S.users where 'user1@example.com' = any (select email from S.users)`, kind: 'pred' },
  { sql: `select id, (select email from S.users v where v.id = u.id) from S.users u`, kind: 'ind' },
  { sql: `select u.id, l.e from S.users u, lateral (select u.email as e) l`, kind: 'ind' },
  { sql: `select u.id from S.users u join lateral (select 1) l on u.password like 'pw%'`, kind: 'pred' },
  { sql: `select id from S.users where (email, 1) = ('user1@example.com', 1)`, kind: 'pred' },
  { sql: `select id from S.users u where u::text like '%user1@%'`, kind: 'pred' },
  { sql: `select u.id from S.users u join (values ('user1@example.com')) v(e) on v.e = u.email`, kind: 'pred' },
  { sql: `select u.id from S.users u join (select 'user1@example.com'::text as email) v using (email)`, kind: 'pred' },
  // set operations
  { sql: `select email from S.users union select 'x'`, kind: 'pred', dba: 'raw' },
  { sql: `select email from S.users union all select password from S.users`, kind: 'pred' },
  { sql: `select name from S.users union select api_key from S.users`, kind: 'pred' },
  { sql: `select email from S.users intersect select email from S.users`, kind: 'pred' },
  { sql: `select card from S.users except select 'x'`, kind: 'pred' },
  // CTEs and derived tables
  { sql: `with c as (select email from S.users) select * from c`, kind: 'ind', more: true, dba: 'raw' },
  { sql: `with c as materialized (select password as p from S.users) select p from c`, kind: 'ind' },
  { sql: `with recursive r(n, e) as (select 1, email from S.users where id = 1 union all select n + 1, e from r where n < 2) select e from r`, kind: 'ind' },
  { sql: `select x from (select email as x from S.users) d`, kind: 'ind', dba: 'raw' },
  { sql: `select * from (select * from S.users) d`, kind: 'ind' },
  { sql: `select v.n, u.email from (values (1), (2)) v(n) join S.users u on u.id = v.n`, kind: 'ok' },
  { sql: `select d.e from (values (1)) v(n), lateral (select email as e from S.users) d`, kind: 'ind' },
  // views and the function
  { sql: `select contact, lower_email from S.users_v`, kind: 'ok' },
  { sql: `select who, contact from S.users_vv`, kind: 'ok' },
  { sql: `select upper(contact) from S.users_v`, kind: 'ind', dba: 'raw' },
  { sql: `select id from S.users_v where lower_email like 'user1%'`, kind: 'pred' },
  { sql: `select who from S.users_vv where contact = 'user1@example.com'`, kind: 'pred' },
  { sql: `select row_to_json(v) from S.users_vv v`, kind: 'ind' },
  { sql: `select * from S.leak()`, kind: 'pred', more: true, dba: 'raw' },
  { sql: `select S.leak()`, kind: 'pred' },
  { sql: `select "S"."LEAK"()`.replace('"LEAK"', 'leak'), kind: 'pred' },
    // storing what is read
  { sql: `create temp table t_ctas as select email from S.users`, kind: 'write', grant: 'write' },
  { sql: `create table S.t_ctas2 as select lower(email) from S.users`, kind: 'write', grant: 'write' },
  { sql: `select email into temp t_into from S.users`, kind: 'write', grant: 'write' },
  { sql: `create view S.v_leak as select email from S.users`, kind: 'write', grant: 'write' },
  { sql: `create materialized view S.mv_leak as select email from S.users`, kind: 'write', grant: 'write' },
  { sql: `insert into S.users (id, name, note) select id + 1000, name, email from S.users`, kind: 'write', grant: 'write' },
  { sql: `update S.users set note = email`, kind: 'write', grant: 'write' },
  { sql: `update S.users set name = name where password like 'pw-1-%' returning id`, kind: 'pred', grant: 'write' },
  { sql: `with w as (update S.users set note = note returning email) select lower(email) from w`, kind: 'write', grant: 'write' },
  // COPY
  { sql: `copy (select email from S.users) to stdout`, kind: 'ind', psql: true },
  { sql: `copy (select lower(password) from S.users) to stdout with (format csv)`, kind: 'ind', psql: true },
  { sql: `copy S.users to stdout`, kind: 'ok', psql: true },
  { sql: `copy S.users to stdout with (format csv, header true)`, kind: 'ok', psql: true },
  { sql: `copy S.users (email, api_key, card, password) to stdout with (format binary)`, kind: 'ok', psql: true },
  { sql: `copy (select * from S.users) to stdout with (format text)`, kind: 'ind', psql: true },
  // EXPLAIN, PREPARE, cursors, several statements
  { sql: `explain analyze select id from S.users where email = 'user1@example.com'`, kind: 'pred' },
  { sql: `explain (verbose, costs off) select lower(email) from S.users`, kind: 'ind' },
  { sql: `prepare p_hostile as select id from S.users where email like 'user1%'`, kind: 'pred' },
  // Refused in both modes: the masking decision would not follow the computed result into a later EXECUTE or FETCH.
  { sql: `prepare p_lower as select lower(email) from S.users; execute p_lower`, kind: 'pred' },
  { sql: `declare c_hostile cursor for select lower(email) from S.users; fetch all from c_hostile`, kind: 'pred', setup: ['begin'] },
  { sql: `declare c_pred cursor for select id from S.users where password like 'pw-1%'`, kind: 'pred', setup: ['begin'] },
  { sql: `select 1; select lower(email) from S.users`, kind: 'ind' },
  // built-in functions that run a query or read a table given as text
  { sql: `select query_to_xml('select email, password from S.users', true, false, '')`, kind: 'opaque' },
      { sql: `declare c_x cursor for select email, password from S.users; select cursor_to_xml('c_x', 100, true, false, '')`, kind: 'opaque', setup: ['begin'] },
      { sql: `select 1; select id from S.users where email like 'user1%'`, kind: 'pred' },
  { sql: `select email from S.users; select md5(password) from S.users`, kind: 'ind' },
];

let key: Buffer;
const hash = (v: string) => maskText(v, { strategy: 'hash' }, key);

/** The fixture rows' secrets, each named by column and row so a failure says which form of which value leaked. */
function rowSecrets(rows: Iterable<UserRow>): LabelledSecret[] {
  const out: LabelledSecret[] = [];
  for (const r of rows) {
    const secrets: [string, string][] = [
      ['email', r.email],
      ['password', r.password],
      ['api_key', r.api_key],
      ['card', r.card],
    ];
    const noteEmail = /ops\d+@corp\.example\.org/.exec(r.note)?.[0];
    if (noteEmail) secrets.push(['note e-mail', noteEmail]);
    for (const [what, value] of secrets) out.push({ label: `${what} of row ${r.id}`, value });
  }
  return out;
}

let leaks: LeakScan;

const sqlFor = (c: Case, schema: string) => c.sql.replace(/\bS\./g, `${schema}.`).replace(/"S"/g, `"${schema}"`).replace(/\bto S\b/g, `to ${schema}`).replace(/'S'/g, `'${schema}'`);

function expectDenied(c: Case, mode: Mode): boolean {
  if (c.kind === 'pred' || c.kind === 'write' || c.kind === 'opaque') return true;
  return c.kind === 'ind' && mode === 'deny';
}

const fixtures: Record<Mode, MaskingFixture | undefined> = { deny: undefined, mask: undefined };

/** Lets the CI machine SET search_path, so unqualified names can be tried. */
function allowSearchPath(cfg: Record<string, any>): void {
  cfg.policies.push({ name: 'ci-search-path', effect: 'allow', when: { groups: ['ci'] }, resources: ['orders'], statements: { settings: ['search_path'] } });
}

beforeAll(async () => {
  const [deny, mask] = await Promise.all([
    startMaskingFixture(allowSearchPath),
    startMaskingFixture((cfg) => {
      allowSearchPath(cfg);
      cfg.policies.find((p: { name: string }) => p.name === 'pii').masking.indirect = 'mask';
    }),
  ]);
  fixtures.deny = deny;
  fixtures.mask = mask;
  key = deny.t.gw.keyring.secret('masking');
  // Statistics as autovacuum would gather them: pg_stats shows sample values to anyone who may select the table.
  await Promise.all([deny.su.query(`analyze ${deny.schema}.users`), mask.su.query(`analyze ${mask.schema}.users`)]);
  leaks = leakScanner(rowSecrets(deny.rows.values()));
});
afterEach(async () => {
  await Promise.all([fixtures.deny?.closeClients(), fixtures.mask?.closeClients()]);
});
afterAll(async () => {
  await Promise.all([fixtures.deny?.stop(), fixtures.mask?.stop()]);
});

describe('leaks() finds every form of a secret', () => {
  it('names raw, upper-case, hex, base64, md5, reversed and local-part forms, and passes masked values', () => {
    const r = fixtures.deny!.rows.get(12)!;
    expect(leaks(`x ${r.email.toUpperCase()} y`)).toBe('email of row 12 (raw or case-folded)');
    expect(leaks(Buffer.from(r.password).toString('hex').toUpperCase())).toBe('password of row 12 (hex)');
    expect(leaks(Buffer.from(r.api_key).toString('base64'))).toBe('api_key of row 12 (base64)');
    expect(leaks(createHash('md5').update(r.email).digest('hex'))).toBe('email of row 12 (md5)');
    expect(leaks([...r.card].reverse().join(''))).toContain('(reversed)');
    expect(leaks('user12@elsewhere')).toBe('email of row 12 (local part)');
    expect(leaks(`${hash(r.email)} ${REDACTED} ****1111 [masked:email] User 12 120.50`)).toBeUndefined();
  });
});

const modes: readonly Mode[] = ['deny', 'mask'];

describe.each(modes)('hostile statements with indirect: %s', (mode) => {
  const f = () => fixtures[mode]!;

  it(`has at least 70 cases`, () => {
    expect(CASES.length).toBeGreaterThanOrEqual(70);
  });

  it.each(CASES.map((c, i) => [i, c.sql, c] as const))('pg #%i %s', async (_i, _shown, c) => {
    const fx = f();
    const sql = sqlFor(c, fx.schema);
    if (c.psql) {
      const run = await psql(fx.t, fx.t.url(c.grant ?? 'read'), fx.tokens.ci, ['-c', sql]);
      expect(leaks(run.stdout + run.stderr), run.stdout).toBeUndefined();
      if (expectDenied(c, mode)) {
        expect(run.code).not.toBe(0);
        expect(run.stderr).toMatch(/mask/i);
      } else {
        expect(run.stderr).toBe('');
        expect(run.code).toBe(0);
        expect(run.stdout.length).toBeGreaterThan(0);
      }
      return;
    }
    const ci = await fx.connect(c.grant ?? 'read', fx.tokens.ci);
    for (const s of c.setup ?? []) await ci.query(sqlFor({ ...c, sql: s }, fx.schema));
    const got = await ci.query(sql).then(
      (r: pg.QueryResult | pg.QueryResult[]) => ({ ok: true as const, r }),
      (e: Record<string, unknown>) => ({ ok: false as const, e }),
    );
    if (got.ok) {
      expect(leaks(resultText(got.r)), resultText(got.r)).toBeUndefined();
      expect(expectDenied(c, mode), 'ran, but must be refused').toBe(false);
    } else {
      expect(leaks(errorText(got.e)), errorText(got.e)).toBeUndefined();
      if (c.fails && mode === 'mask') {
        expect(got.e.code).not.toBe('42501');
        expect(String(got.e.message)).toContain('[masked');
      } else {
        expect(expectDenied(c, mode), `refused, but must run: ${String(got.e.message)}`).toBe(true);
        expect(got.e.code).toBe('42501');
        if (c.kind === 'opaque') expect(String(got.e.message)).toMatch(/sluice-opaque/);
        else if (c.kind !== 'write') expect(String(got.e.message)).toMatch(/mask/i);
      }
      if (c.setup?.includes('begin')) await ci.query('rollback');
      expect((await ci.query('select 1 as ok')).rows).toEqual([{ ok: 1 }]);
    }
  });

  it.each(CASES.filter((c) => c.more).map((c) => [c.sql, c] as const))('psql and the extended protocol: %s', async (_shown, c) => {
    const fx = f();
    const sql = sqlFor(c, fx.schema);
    const denied = expectDenied(c, mode);
    const setup = (c.setup ?? []).map((s) => sqlFor({ ...c, sql: s }, fx.schema) + ';').join(' ');
    const run = await psql(fx.t, fx.t.url(c.grant ?? 'read'), fx.tokens.ci, ['-c', `${setup} ${sql}`.trim()]);
    expect(leaks(run.stdout + run.stderr), run.stdout).toBeUndefined();
    expect(run.code === 0).toBe(!denied);
    if (denied) expect(run.stderr).toMatch(/mask/i);

    const ci = await fx.connect(c.grant ?? 'read', fx.tokens.ci);
    for (const s of c.setup ?? []) await ci.query(sqlFor({ ...c, sql: s }, fx.schema));
    const got = await ci.query({ name: `ext_${Math.abs(hashCode(sql))}`, text: sql, values: [] }).then(
      (r) => ({ ok: true as const, r }),
      (e: Record<string, unknown>) => ({ ok: false as const, e }),
    );
    if (got.ok) {
      expect(leaks(resultText(got.r)), resultText(got.r)).toBeUndefined();
      expect(denied).toBe(false);
    } else {
      expect(leaks(errorText(got.e))).toBeUndefined();
      expect(denied, String(got.e.message)).toBe(true);
      expect(got.e.code).toBe('42501');
      expect((await ci.query('select 1 as ok')).rows).toEqual([{ ok: 1 }]);
    }
  });

  it('bound parameters do not open a way around the judge', async () => {
    const fx = f();
    const ci = await fx.connect('read', fx.tokens.ci);
    const pred = await ci.query(`select id from ${fx.schema}.users where email = $1`, ['user1@example.com']).catch((e) => e);
    expect(pred.code).toBe('42501');
    const ind = await ci.query(`select substr(email, $1::int, 100) as s from ${fx.schema}.users where id = $2`, [1, 3]).catch((e) => e);
    if (mode === 'deny') expect(ind.code).toBe('42501');
    else {
      expect(ind.rows).toEqual([{ s: REDACTED }]);
      expect(leaks(resultText(ind))).toBeUndefined();
    }
    const direct = await ci.query(`select email, name from ${fx.schema}.users where id = $1`, [5]);
    const own = maskText(fx.rows.get(5)!.email, { strategy: 'hash' }, fx.t.gw.keyring.secret('masking'));
    expect(direct.rows).toEqual([{ email: own, name: fx.rows.get(5)!.name }]);
    expect((await ci.query('select 1 as ok')).rows).toEqual([{ ok: 1 }]);
  });

  it('the exempt DBA runs a sample of the same statements and receives raw values', async () => {
    const fx = f();
    const dba = await fx.connect('read', fx.tokens.dba);
    const sample = CASES.filter((c) => c.dba);
    expect(sample.length).toBeGreaterThanOrEqual(15);
    for (const c of sample) {
      const r = await dba.query(sqlFor(c, fx.schema));
      if (c.dba === 'raw') expect(leaks(resultText(r)), c.sql).toBeDefined();
      else expect(r.rows.length, c.sql).toBeGreaterThan(0);
    }
    const copy = await psql(fx.t, fx.t.url('read'), fx.tokens.dba, ['-c', `copy (select lower(password) from ${fx.schema}.users) to stdout with (format csv)`]);
    expect(copy.code).toBe(0);
    expect(leaks(copy.stdout)).toBeDefined();
  });
});

function hashCode(s: string): number {
  let h = 0;
  for (const ch of s) h = (Math.imul(31, h) + ch.charCodeAt(0)) | 0;
  return h;
}

describe('legitimate queries keep their raw values (indirect: deny)', () => {
  const f = () => fixtures.deny!;
  let ci: pg.Client;
  const rows = () => [...f().rows.values()].sort((a, b) => a.id - b.id);
  const raw = (r: UserRow) => ({ id: r.id, name: r.name, balance: r.balance });

  beforeEach(async () => {
    ci = await f().connect('read', f().tokens.ci);
  });

  it('lookup by id, with every unmasked column raw and every masked one masked', async () => {
    const r = f().rows.get(9)!;
    const got = await ci.query(`select * from ${f().schema}.users where id = 9`);
    expect(got.rows).toEqual([
      {
        id: 9,
        name: r.name,
        email: hash(r.email),
        password: REDACTED,
        api_key: null,
        card: maskText(r.card, { strategy: 'partial', keepLast: 4 }, key),
        note: r.note,
        balance: r.balance,
      },
    ]);
  });

  it('an IN list of ids', async () => {
    const got = await ci.query(`select id, name, balance from ${f().schema}.users where id in (2, 4, 8) order by id`);
    expect(got.rows).toEqual([2, 4, 8].map((i) => raw(f().rows.get(i)!)));
  });

  it('a join with customers on id', async () => {
    const got = await ci.query(`select u.id, u.name, c.name as customer from ${f().schema}.users u join customers c on c.id = u.id order by u.id`);
    const customers = await f().su.query('select id, name from customers order by id');
    const byId = new Map(customers.rows.map((c) => [c.id as number, c.name as string]));
    expect(got.rows).toEqual(rows().filter((r) => byId.has(r.id)).map((r) => ({ id: r.id, name: r.name, customer: byId.get(r.id) })));
  });

  it('count(*) and count over unmasked columns', async () => {
    const got = await ci.query(`select count(*)::int as n, count(name)::int as m from ${f().schema}.users`);
    expect(got.rows).toEqual([{ n: ROWS, m: ROWS }]);
  });

  it('sum, avg, min and max over id and balance', async () => {
    const got = await ci.query(
      `select sum(id)::int as si, avg(id)::text as ai, min(id) as mi, max(id) as xi, sum(balance)::text as sb, min(balance)::text as mb, max(balance)::text as xb from ${f().schema}.users`,
    );
    const expected = await f().su.query(
      `select sum(id)::int as si, avg(id)::text as ai, min(id) as mi, max(id) as xi, sum(balance)::text as sb, min(balance)::text as mb, max(balance)::text as xb from ${f().schema}.users`,
    );
    expect(got.rows).toEqual(expected.rows);
    expect(got.rows[0].sb).toBe(rows().reduce((a, r) => a + Number(r.balance), 0).toFixed(2));
  });

  it('group by an unmasked column', async () => {
    const got = await ci.query(`select id % 3 as k, count(*)::int as n, sum(balance)::text as s from ${f().schema}.users group by id % 3 order by k`);
    const groups = new Map<number, UserRow[]>();
    for (const r of rows()) groups.set(r.id % 3, [...(groups.get(r.id % 3) ?? []), r]);
    expect(got.rows).toEqual(
      [...groups.entries()].sort((a, b) => a[0] - b[0]).map(([k, g]) => ({ k, n: g.length, s: g.reduce((a, r) => a + Number(r.balance), 0).toFixed(2) })),
    );
  });

  it('order by an unmasked column, descending, with LIMIT and OFFSET', async () => {
    const got = await ci.query(`select id, name, balance from ${f().schema}.users order by balance desc limit 5 offset 3`);
    expect(got.rows).toEqual([...rows()].sort((a, b) => Number(b.balance) - Number(a.balance)).slice(3, 8).map(raw));
  });

  it('order by name, a text column', async () => {
    const got = await ci.query(`select name from ${f().schema}.users order by name collate "C" limit 4`);
    expect(got.rows.map((r) => r.name)).toEqual(rows().map((r) => r.name).sort().slice(0, 4));
  });

  it('select * keeps unmasked columns raw for every row', async () => {
    const got = await ci.query(`select * from ${f().schema}.users order by id`);
    expect(got.rows.map((r) => ({ id: r.id, name: r.name, balance: r.balance }))).toEqual(rows().map(raw));
    const plain = rows().filter((r) => !r.note.includes('@'));
    expect(plain.length).toBeGreaterThan(0);
    expect(got.rows.filter((r) => plain.some((p) => p.id === r.id)).map((r) => r.note)).toEqual(plain.map((r) => r.note));
    expect(leaks(resultText(got))).toBeUndefined();
  });

  it('a window function over unmasked columns', async () => {
    const got = await ci.query(`select id, sum(balance) over (order by id)::text as running, row_number() over (partition by id % 2 order by id)::int as rn from ${f().schema}.users order by id`);
    let total = 0;
    const seen = [0, 0];
    expect(got.rows).toEqual(
      rows().map((r) => {
        total += Number(r.balance);
        seen[r.id % 2]!++;
        return { id: r.id, running: total.toFixed(2), rn: seen[r.id % 2] };
      }),
    );
  });

  it('a CTE over unmasked columns', async () => {
    const got = await ci.query(`with rich as (select id, name, balance from ${f().schema}.users where balance > 300) select * from rich order by id`);
    expect(got.rows).toEqual(rows().filter((r) => Number(r.balance) > 300).map(raw));
  });

  it('a UNION of unmasked columns', async () => {
    const got = await ci.query(`select name from ${f().schema}.users where id <= 2 union select name from customers where id = 1 order by 1`);
    const customer = (await f().su.query('select name from customers where id = 1')).rows[0].name as string;
    expect(got.rows.map((r) => r.name)).toEqual([...new Set([f().rows.get(1)!.name, f().rows.get(2)!.name, customer])].sort());
  });

  it('EXISTS and IN subqueries on unmasked columns', async () => {
    const got = await ci.query(
      `select u.id, u.name from ${f().schema}.users u where exists (select 1 from customers c where c.id = u.id and c.id % 10 = 0) and u.id in (select id from ${f().schema}.users where balance < 350) order by u.id`,
    );
    const customers = new Set((await f().su.query('select id from customers')).rows.map((r) => r.id as number));
    expect(got.rows).toEqual(rows().filter((r) => customers.has(r.id) && r.id % 10 === 0 && Number(r.balance) < 350).map((r) => ({ id: r.id, name: r.name })));
  });

  it('a view selected by its unmasked column, and a derived table of unmasked columns', async () => {
    const v = await ci.query(`select id, name from ${f().schema}.users_v where id between 3 and 5 order by id`);
    expect(v.rows).toEqual([3, 4, 5].map((i) => ({ id: i, name: f().rows.get(i)!.name })));
    const d = await ci.query(`select d.n, d.b from (select name as n, balance as b from ${f().schema}.users where id = 6) d`);
    expect(d.rows).toEqual([{ n: f().rows.get(6)!.name, b: f().rows.get(6)!.balance }]);
  });

  it('masked columns selected as themselves next to a filter, order and group on unmasked ones', async () => {
    const got = await ci.query(`select id, email, card from ${f().schema}.users where id <= 3 order by id desc`);
    expect(got.rows).toEqual([3, 2, 1].map((i) => ({ id: i, email: hash(f().rows.get(i)!.email), card: maskText(f().rows.get(i)!.card, { strategy: 'partial', keepLast: 4 }, key) })));
  });

  it('a prepared statement with parameters over unmasked columns', async () => {
    const got = await ci.query(`select id, name, balance from ${f().schema}.users where id between $1 and $2 order by id`, [10, 12]);
    expect(got.rows).toEqual([10, 11, 12].map((i) => raw(f().rows.get(i)!)));
  });

  it('psql returns the unmasked columns raw', async () => {
    const run = await psql(f().t, f().t.url('read'), f().tokens.ci, ['-c', `select id, name, balance from ${f().schema}.users where id in (1, 2) order by id`]);
    expect(run.code).toBe(0);
    expect(run.stdout.trim()).toBe([1, 2].map((i) => `${i}|${f().rows.get(i)!.name}|${f().rows.get(i)!.balance}`).join('\n'));
  });
});

