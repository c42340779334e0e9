import { createHash } from 'node:crypto';
import { serialize } from 'pg-protocol';
import type pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { maskText, REDACTED } from '../../src/masking/strategies.js';
import { psql } from '../support/clients.js';
import type { Session } from '../support/raw-client.js';
import { startMaskingFixture, type MaskingFixture } from './fixture.js';
import { errorText, fixtureSecrets, leakScanner, resultText, type LeakScan } from './leak-scan.js';
import { openAs, roundTrip, textRows, wireText, withSession } from './wire-helpers.js';

/**
 * Third adversarial round against the real gateway as the masked CI machine
 * (`indirect: deny`): built-ins that read or measure values, window and
 * grouping constructs, SQL forms that select a table without SELECT, and
 * protocol sequences (several statements in one Query, COPY FROM then TO,
 * portal names reused across transactions). Every probe is refused with a
 * `sluice:` 42501 or returns nothing that reveals a raw value; the same
 * constructs over unmasked columns return their raw values.
 */

let f: MaskingFixture;
let key: Buffer;
const hash = (v: string) => maskText(v, { strategy: 'hash' }, key);
const S = () => f.schema;
const sub = (sql: string) => sql.replace(/\bS\./g, `${S()}.`).replace(/'S'/g, `'${S()}'`);

const WRITTEN = { email: 'probe3.written@example.net', password: 'probe3-written-secret-pw' };
let leaks: LeakScan;

type Outcome = { ok: true; r: pg.QueryResult | pg.QueryResult[] } | { ok: false; e: Record<string, unknown> };

async function run(c: pg.Client, sql: string): Promise<Outcome> {
  return c.query(sub(sql)).then(
    (r: pg.QueryResult | pg.QueryResult[]) => ({ ok: true as const, r }),
    (e: Record<string, unknown>) => ({ ok: false as const, e }),
  );
}

/** Refused by Sluice's masking, nothing revealed, session still usable. */
async function expectRefused(c: pg.Client, sql: string): Promise<void> {
  const got = await run(c, sql);
  if (got.ok) throw new Error(`ran, but must be refused: ${sql}\n${resultText(got.r).slice(0, 300)}`);
  expect(leaks(errorText(got.e)), sql).toBeUndefined();
  expect(got.e.code, `${sql}: ${String(got.e.message)}`).toBe('42501');
  expect(String(got.e.message), sql).toMatch(/^sluice:/);
  await c.query('rollback').catch(() => undefined);
  expect((await c.query('select 1 as ok')).rows).toEqual([{ ok: 1 }]);
}

/** Runs and returns its rows, none of which reveal a secret. */
async function expectRuns(c: pg.Client, sql: string): Promise<pg.QueryResult> {
  const got = await run(c, sql);
  if (!got.ok) throw new Error(`refused, but must run: ${sql}: ${String(got.e.message)}`);
  expect(leaks(resultText(got.r)), sql).toBeUndefined();
  return (Array.isArray(got.r) ? got.r[got.r.length - 1] : got.r)!;
}

const open = (grant = 'read'): Promise<Session> => openAs(f, grant);

beforeAll(async () => {
  f = await startMaskingFixture();
  key = f.t.gw.keyring.secret('masking');
  await f.su.query(`analyze ${S()}.users`);
  leaks = leakScanner([...fixtureSecrets(f.rows.values()), WRITTEN.email, WRITTEN.password]);
});
afterEach(async () => {
  await f.closeClients();
});
afterAll(async () => {
  await f?.stop();
});

describe('leaks() sees what it must', () => {
  it('finds raw, upper-case, hex, base64, md5, reversed and local-part forms, and passes masked values', () => {
    const r = f.rows.get(7)!;
    expect(leaks(r.password.toUpperCase())).toBe(r.password);
    expect(leaks(Buffer.from(r.api_key).toString('base64'))).toBe(r.api_key);
    expect(leaks(createHash('md5').update(r.email).digest('hex'))).toBe(r.email);
    expect(leaks([...r.password].reverse().join(''))).toBe(r.password);
    expect(leaks('mail user7@elsewhere')).toBe(r.email);
    expect(leaks(`${hash(r.email)} ${REDACTED} ****1111 User 7 70.50`)).toBeUndefined();
  });
});

/** Built-ins and expressions over a masked column: computing over it is refused under `indirect: deny`. */
const REFUSED_READ: readonly string[] = [
  `select pg_column_size(password) from S.users`,
  `select to_tsvector('simple', email) from S.users`,
  `select * from ts_stat('select to_tsvector(''simple'', email) from S.users')`,
  `select xmlexists('//x[text()="a"]' passing by value xmlelement(name x, email)) from S.users`,
  `select jsonb_path_query(to_jsonb(u), '$.email') from S.users u`,
  `select array_to_string(array(select password from S.users), ',')`,
  `select string_to_table(email, '@') from S.users`,
  `select regexp_matches(password, '(.*)') from S.users`,
  `select concat_ws(',', email, password) from S.users`,
  `select format('%I', api_key) from S.users`,
  `select x.p from S.users u cross join lateral (select u.password as p) x`,
  `select v.x from S.users u cross join lateral (values (u.password)) v(x)`,
  `select id, email is distinct from 'nobody' from S.users`,
  `select id from S.users where email is distinct from 'nobody'`,
  `select id from S.users where row(password, id) > row('pw-2', 0)`,
  `select case password when 'pw-1-x' then 1 else 0 end from S.users`,
  `select coalesce(nullif(email, 'nobody'), 'hit') from S.users`,
  `select greatest(password, 'm') from S.users`,
  `select least(email, 'a') from S.users`,
  `select first_value(password) over () from S.users`,
  `select id, lag(email) over (order by id) from S.users`,
  `select nth_value(card, 2) over (order by id) from S.users`,
  `select sum(id) filter (where password > 'pw-2') from S.users`,
  `select count(*) filter (where card like '4%') from S.users`,
  `select bool_and(email > 'm') from S.users`,
  `select every(password like 'pw%') from S.users`,
  `select count(*) from S.users group by grouping sets ((email), ())`,
  `select count(*) from S.users group by rollup (password)`,
  `select count(*) from S.users group by cube (card, id)`,
  `select id from S.users group by id having count(distinct email) > 1`,
  `select id from S.users group by id having bool_or(password like 'pw-1-%')`,
  `select id from S.users tablesample bernoulli (100) where password like 'pw-1%'`,
  `with c as (select id, email from S.users) select a.email from c a join c b on a.email = b.email`,
  `with c as (select id, email from S.users) select a.id, b.email from c a, c b where a.id = b.id`,
  `explain (analyze, format json) select id from S.users where password like 'pw-1-%'`,
  `explain (format json) select id from S.users where password = 'pw-1-x'`,
  `explain select id from S.users where card = '4111 1111 1111 1111'`,
  `do $$ begin perform email from S.users; end $$`,
  `select id, (select p from (values (password)) t(p)) from S.users`,
  `select id from S.users where (email, password) in (select 'a', 'b')`,
  `select id from S.users where email = any (array['nobody'])`,
  `select id, email ~ '^user1' from S.users`,
  `select id from S.users order by greatest(password, name)`,
  `select percentile_disc(0.5) within group (order by email) from S.users`,
  `select mode() within group (order by password) from S.users`,
  `select id, ntile(2) over (order by card) from S.users`,
  `select json_object_agg(id, email) from S.users`,
  `select id from S.users u where u.email::text similar to 'user1%'`,
];

describe('reading masked columns through built-ins and expressions is refused', () => {
  it.each(REFUSED_READ.map((s) => [s] as const))('%s', async (sql) => {
    const ci = await f.connect('read', f.tokens.ci);
    await expectRefused(ci, sql);
  });
});

describe('SQL forms that select masked columns as themselves come back masked', () => {
  it('TABLE, ONLY, TABLESAMPLE and a CTE referenced twice keep masked columns masked and the rest raw', async () => {
    const ci = await f.connect('read', f.tokens.ci);
    for (const sql of [`table S.users`, `select * from only S.users`, `select * from S.users tablesample system (100)`, `select * from S.users tablesample bernoulli (100) repeatable (7)`]) {
      const r = await expectRuns(ci, sql);
      expect(r.rows.length, sql).toBe(40);
      for (const row of r.rows) {
        const raw = f.rows.get(row.id as number)!;
        expect(row.name, sql).toBe(raw.name);
        expect(row.balance, sql).toBe(raw.balance);
        expect(row.password, sql).toBe(REDACTED);
        expect(row.email, sql).toBe(hash(raw.email));
        expect(row.api_key, sql).toBeNull();
      }
    }
  });

  it('SELECT ... FOR UPDATE and FOR SHARE with a write grant', async () => {
    const ci = await f.connect('write', f.tokens.ci);
    await ci.query('begin');
    const a = await expectRuns(ci, `select id, name, email, password, card from S.users where id = 2 for update`);
    const b = await expectRuns(ci, `select u.* from S.users u where id in (3, 4) for share of u`);
    await ci.query('commit');
    expect(a.rows).toEqual([{ id: 2, name: 'User 2', email: hash(f.rows.get(2)!.email), password: REDACTED, card: '****1111' }]);
    expect(b.rows.map((r) => r.password)).toEqual([REDACTED, REDACTED]);
  });

  it('a prepared statement with a parameter selecting masked columns by id, and one comparing a masked column, via PREPARE/EXECUTE', async () => {
    const ci = await f.connect('read', f.tokens.ci);
    await expectRefused(ci, `prepare p_cmp(text) as select id from S.users where email = $1`);
    await expectRefused(ci, `prepare p_len(int) as select id from S.users where length(password) > $1`);
    const ok = await run(ci, `prepare p_id(int) as select id, name, email, password from S.users where id = $1`);
    if (ok.ok) {
      const r = await expectRuns(ci, `execute p_id(5)`);
      expect(r.rows).toEqual([{ id: 5, name: 'User 5', email: hash(f.rows.get(5)!.email), password: REDACTED }]);
    } else {
      expect(ok.e.code).toBe('42501');
      expect(leaks(errorText(ok.e))).toBeUndefined();
    }
  });

  it('EXPLAIN VERBOSE of a plain selection shows output expressions, never values', async () => {
    const ci = await f.connect('read', f.tokens.ci);
    const got = await run(ci, `explain (verbose, costs off) select email, password from S.users`);
    if (got.ok) expect(leaks(resultText(got.r))).toBeUndefined();
    else {
      expect(got.e.code).toBe('42501');
      expect(leaks(errorText(got.e))).toBeUndefined();
    }
  });

  it('SHOW, SET and RESET reveal no masked value', async () => {
    const ci = await f.connect('read', f.tokens.ci);
    await expectRuns(ci, 'show all');
    const set = await run(ci, `set application_name = 'probe3'`);
    if (!set.ok) expect(leaks(errorText(set.e))).toBeUndefined();
    await ci.query('reset all').catch(() => undefined);
    await expectRefused(ci, `select set_config('application_name', email, false) from S.users where id = 1`);
    expect((await ci.query('select 1 as ok')).rows).toEqual([{ ok: 1 }]);
  });
});

describe('storing masked values elsewhere (write grant)', () => {
  it.each([
    [`create temp view tv3 as select password from S.users`],
    [`create temp view tv4 as select * from S.users`],
    [`select u.* into temp t3 from S.users u`],
    [`create temp table t5 as table S.users`],
    [`insert into S.users (id, name, note) select id + 5000, name, password from S.users`],
    [`update S.users set name = greatest(name, password) where id = 1`],
    [`delete from S.users where password like 'pw-1-%'`],
    [`update S.users set note = note from (select 1) x where S.users.email like 'user1%'`],
  ])('%s is refused', async (sql) => {
    const ci = await f.connect('write', f.tokens.ci);
    const got = await run(ci, sql);
    if (got.ok) throw new Error(`ran, but must be refused: ${sql}`);
    expect(got.e.code, String(got.e.message)).toBe('42501');
    expect(leaks(errorText(got.e))).toBeUndefined();
    expect((await ci.query('select 1 as ok')).rows).toEqual([{ ok: 1 }]);
  });
});

describe('legitimate variants over unmasked columns keep raw values', () => {
  it('the same built-ins and constructs over id, name and balance return what PostgreSQL returns', async () => {
    const ci = await f.connect('read', f.tokens.ci);
    const statements = [
      `select pg_column_size(name) as v from S.users where id = 3`,
      `select to_tsvector('simple', name)::text as v from S.users where id = 3`,
      `select jsonb_path_query(jsonb_build_object('n', name), '$.n')::text as v from S.users where id = 3`,
      `select array_to_string(array(select name from S.users where id < 4 order by id), ',') as v`,
      `select string_to_table(name, ' ') as v from S.users where id = 3`,
      `select regexp_matches(name, '(\\d+)') as v from S.users where id = 13`,
      `select concat_ws(',', name, balance) as v, format('%s/%I', name, name) as w, quote_literal(name) as q from S.users where id = 3`,
      `select x.p as v from S.users u cross join lateral (select u.name as p) x where u.id = 3`,
      `select v.x as v from S.users u cross join lateral (values (u.balance)) v(x) where u.id = 3`,
      `select id, name is distinct from 'User 3' as v from S.users where id in (3, 4) order by id`,
      `select id from S.users where row(balance, id) > row(380, 0) order by id`,
      `select case name when 'User 3' then 1 else 0 end as v from S.users where id in (3, 4) order by id`,
      `select coalesce(nullif(name, 'User 3'), 'hit') as v from S.users where id in (3, 4) order by id`,
      `select greatest(name, 'User 35') as g, least(balance, 100) as l from S.users where id = 3`,
      `select id, first_value(name) over (order by id) as fv, lag(balance) over (order by id) as lb from S.users where id < 4 order by id`,
      `select sum(id) filter (where balance > 200) as s, count(*) filter (where name like 'User 1%') as c, bool_and(balance > 0) as b, every(id > 0) as e from S.users`,
      `select id % 2 as k, count(*) as n from S.users group by grouping sets ((id % 2), ()) order by 1 nulls last`,
      `select count(*) as n from S.users group by rollup (id % 3) order by 1`,
      `select count(*) as n from S.users group by cube (id % 2, id % 3) order by 1`,
      `select id % 2 as k from S.users group by id % 2 having count(distinct name) > 1 order by 1`,
      `with c as (select id, name from S.users) select a.name from c a join c b on a.name = b.name where a.id < 3 order by 1`,
      `select name, balance from S.users tablesample bernoulli (100) repeatable (3) where name like 'User 1%' order by id`,
      `select id, name from S.users where name = any (array['User 2', 'User 9']) order by id`,
      `select percentile_disc(0.5) within group (order by balance) as v, mode() within group (order by name) as m from S.users`,
      `select json_object_agg(id, name)::text as v from S.users where id < 3`,
    ];
    for (const sql of statements) {
      const expected = await f.su.query(sub(sql));
      const got = await run(ci, sql);
      if (!got.ok) throw new Error(`over-masking: refused ${sql}: ${String(got.e.message)}`);
      expect((got.r as pg.QueryResult).rows, sql).toEqual(expected.rows);
    }
  });

  it('EXPLAIN ANALYZE with a predicate on an unmasked column, and TABLE/FOR UPDATE of unmasked columns', async () => {
    const ci = await f.connect('write', f.tokens.ci);
    const ex = await expectRuns(ci, `explain (analyze, format json, costs off, timing off, summary off) select id from S.users where name = 'User 3'`);
    expect(JSON.stringify(ex.rows)).toContain('User 3');
    await ci.query('begin');
    const fu = await expectRuns(ci, `select id, name, balance from S.users where id = 6 for update`);
    await ci.query('commit');
    expect(fu.rows).toEqual([{ id: 6, name: 'User 6', balance: '60.50' }]);
    const p = await run(ci, sub(`prepare p_ok(int) as select id, name from S.users where id = $1`));
    expect(p.ok).toBe(true);
    expect((await ci.query('execute p_ok(8)')).rows).toEqual([{ id: 8, name: 'User 8' }]);
  });
});

describe('protocol sequences', () => {
  it('one simple Query with two statements whose masked columns sit at different positions', async () => {
    await withSession(open(), async (s) => {
      const got = await roundTrip(
        s,
        serialize.query(
          sub(`select id, name from S.users where id = 1; select password, id, email from S.users where id = 1; select id, email, name, password from S.users where id = 2`),
        ),
      );
      expect(leaks(wireText(got))).toBeUndefined();
      expect(textRows(got)).toEqual([
        ['1', 'User 1'],
        [REDACTED, '1', hash(f.rows.get(1)!.email)],
        ['2', hash(f.rows.get(2)!.email), 'User 2', REDACTED],
      ]);
    });
  });

  it('a simple Query whose first statement is allowed and second refused runs neither', async () => {
    await withSession(open(), async (s) => {
      const got = await roundTrip(s, serialize.query(sub(`select id, email from S.users where id = 1; select greatest(password, 'a') from S.users`)));
      expect(leaks(wireText(got))).toBeUndefined();
      expect(got.some((m) => m.type === 'E')).toBe(true);
      expect(wireText(got.filter((m) => m.type === 'E'))).toContain('42501');
    });
  });

  it('an extended-protocol Parse with several statements is refused and reveals nothing', async () => {
    await withSession(open(), async (s) => {
      const got = await roundTrip(
        s,
        serialize.parse({ name: 'multi', text: sub(`select email from S.users; select lower(email) from S.users`), types: [] }),
        serialize.bind({ statement: 'multi', portal: '' }),
        serialize.execute({ portal: '' }),
        serialize.sync(),
      );
      expect(leaks(wireText(got))).toBeUndefined();
      expect(got.some((m) => m.type === 'E')).toBe(true);
      expect(textRows(got)).toEqual([]);
      const after = await roundTrip(s, serialize.query('select 1 as ok'));
      expect(textRows(after)).toEqual([['1']]);
    });
  });

  it('a portal name reused in a later transaction for a masked select, executed without a Describe', async () => {
    await withSession(open(), async (s) => {
      await roundTrip(s, serialize.query('begin'));
      const first = await roundTrip(
        s,
        serialize.parse({ name: 'r1', text: sub(`select id, name from S.users order by id`), types: [] }),
        serialize.bind({ statement: 'r1', portal: 'pp' }),
        serialize.describe({ type: 'P', name: 'pp' }),
        serialize.execute({ portal: 'pp', rows: 1 }),
        serialize.sync(),
      );
      expect(textRows(first)).toEqual([['1', 'User 1']]);
      await roundTrip(s, serialize.query('commit'));
      await roundTrip(s, serialize.query('begin'));
      const second = await roundTrip(
        s,
        serialize.parse({ name: 'r2', text: sub(`select password, email from S.users order by id`), types: [] }),
        serialize.bind({ statement: 'r2', portal: 'pp' }),
        serialize.execute({ portal: 'pp', rows: 3 }),
        serialize.sync(),
      );
      await roundTrip(s, serialize.query('commit'));
      expect(leaks(wireText(second))).toBeUndefined();
      const rows = textRows(second);
      expect(rows.length).toBe(3);
    });
  });

  it('COPY FROM STDIN of unmasked columns and INSERT of masked ones, then COPY TO, and a duplicate key', async () => {
    const url = f.t.url('write');
    try {
      const into = await psql(f.t, url, f.tokens.ci, ['-c', sub(`copy S.users (id, name, balance) from stdin`)], '7001\tprobe3\t1.00\n\\.\n');
      expect(into.code, into.stderr).toBe(0);
      const ci = await f.connect('write', f.tokens.ci);
      await ci.query(sub(`update S.users set email = $1, password = $2 where id = 7001`), [WRITTEN.email, WRITTEN.password]);
      const out = await psql(f.t, url, f.tokens.ci, ['-c', sub(`copy S.users (id, name, email, password, balance) to stdout with (format csv)`)]);
      expect(out.code, out.stderr).toBe(0);
      expect(leaks(out.stdout + out.stderr)).toBeUndefined();
      expect(out.stdout).toContain(`7001,probe3,${hash(WRITTEN.email)},${REDACTED},1.00`);
      const sel = await psql(f.t, url, f.tokens.ci, ['-c', sub(`select id, name, email, password from S.users where id = 7001`)]);
      expect(leaks(sel.stdout + sel.stderr)).toBeUndefined();
      expect(sel.stdout.trim()).toBe(`7001|probe3|${hash(WRITTEN.email)}|${REDACTED}`);
      const dup = await psql(f.t, url, f.tokens.ci, ['-c', sub(`copy S.users (id, name) from stdin`)], '3\tdup\n\\.\n');
      expect(dup.code).not.toBe(0);
      expect(leaks(dup.stdout + dup.stderr)).toBeUndefined();
      expect(dup.stderr).toContain('duplicate key value violates unique constraint');
      const filtered = await psql(f.t, url, f.tokens.ci, ['-c', sub(`copy S.users (id, name) from stdin where id > 0 and name <> 'skip'`)], '7002\tkeep\n7003\tskip\n\\.\n');
      expect(filtered.stdout.trim()).toBe('COPY 1');
    } finally {
      await f.su.query(`delete from ${S()}.users where id >= 7000`);
    }
  });
});
