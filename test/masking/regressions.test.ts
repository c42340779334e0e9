import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { serialize } from 'pg-protocol';
import { psql } from '../support/clients.js';
import { startMaskingFixture, type MaskingFixture } from './fixture.js';
import { openAs, roundTrip, withSession } from './wire-helpers.js';

/**
 * Ways raw values got out in earlier versions, found by probing the
 * gateway: each must now be refused with 42501, in both indirect modes.
 */
const fixtures: Record<'deny' | 'mask', MaskingFixture | undefined> = { deny: undefined, mask: undefined };

beforeAll(async () => {
  fixtures.deny = await startMaskingFixture();
  fixtures.mask = await startMaskingFixture((cfg) => {
    cfg.policies.find((p: { name: string }) => p.name === 'pii').masking.indirect = 'mask';
  });
  for (const f of Object.values(fixtures)) {
    // Planner statistics hold sampled values once a table is analyzed (autovacuum does it on its own).
    await f!.su.query(`analyze ${f!.schema}.users`);
    await f!.su.query(`
      create view ${f!.schema}."UserView" as select * from ${f!.schema}.users;
      create table ${f!.schema}.gen (id int, g text generated always as ('g' || id) stored, api_key text);
      create table ${f!.schema}.docs (id int, profile jsonb, tags text[]);
      insert into ${f!.schema}.docs values (1, '{"owner": {"email": "docs.owner@secret-corp.example"}}', array['ok', 'tag.owner@secret-corp.example']);
      grant select on ${f!.schema}.docs to ${f!.t.pg.roles.reader.user};
      insert into ${f!.schema}.gen (id, api_key) values (1, 'gen_secret_key');
      grant select on ${f!.schema}."UserView", ${f!.schema}.gen to ${f!.t.pg.roles.reader.user};
    `);
  }
});
afterEach(async () => {
  for (const f of Object.values(fixtures)) await f?.closeClients();
});
afterAll(async () => {
  for (const f of Object.values(fixtures)) await f?.stop();
});

const CASES: [string, (s: string) => string][] = [
  ['planner statistics', (s) => `select histogram_bounds::text from pg_stats where schemaname = '${s}' and tablename = 'users' and attname = 'password'`],
  ['planner statistics, qualified', (s) => `select most_common_vals::text from pg_catalog.pg_stats where schemaname = '${s}'`],
  ['a table read through table_to_xml', (s) => `select xpath('//password/text()', table_to_xml('${s}.users', true, false, ''))::text`],
  ['a schema read through schema_to_xml', (s) => `select schema_to_xml('${s}', true, false, '')`],
  ['NATURAL JOIN as a filter', (s) => `select u.id from ${s}.users u natural join (select 'user1@example.com'::text as email) v`],
  ['INTERSECT as a membership test', (s) => `select email from ${s}.users intersect select 'user1@example.com'`],
  ['a user-defined function filtered by the caller', (s) => `select l from ${s}.leak() l where l = 'user1@example.com'`],
  ['an outer column as a condition in EXISTS', (s) => `select id from ${s}.users where exists (select 1 from customers where password like 'pw-1%')`],
  ['ORDER BY an ordinal inside *', (s) => `select * from ${s}.users order by 4`],
  ['DISTINCT on a masked column', (s) => `select distinct password, id from ${s}.users`],
  ['a condition on a mixed-case view', (s) => `select id from ${s}."UserView" where password like 'pw-1%'`],
];

/** Computed reads: refused under indirect: deny, fully masked under indirect: mask. */
const COMPUTED: [string, (s: string) => string][] = [
  ['an outer column inside a scalar subquery over another table', (s) => `select (select password from customers limit 1) as p from ${s}.users`],
  ['a mixed-case view computing over a masked column', (s) => `select lower(password) as p from ${s}."UserView"`],
];

describe.each(['deny', 'mask'] as const)('with indirect: %s', (mode) => {
  it.each(CASES)('refuses %s', async (_what, sql) => {
    const f = fixtures[mode]!;
    const ci = await f.connect('read', f.tokens.ci);
    const err = await ci.query(sql(f.schema)).catch((e) => e);
    expect(err.code).toBe('42501');
    expect(String(err.message)).toMatch(/^sluice: /);
    expect((await ci.query('select 1 as ok')).rows).toEqual([{ ok: 1 }]);
  });

  it.each(COMPUTED)('refuses or fully masks %s', async (_what, sql) => {
    const f = fixtures[mode]!;
    const ci = await f.connect('read', f.tokens.ci);
    const got = await ci.query(sql(f.schema)).catch((e) => e);
    if (mode === 'deny') expect(got.code).toBe('42501');
    else expect(new Set(got.rows.map((r: { p: unknown }) => r.p))).toEqual(new Set(['[masked]']));
  });

  it('refuses a function and a table created around Sluice, even on the first statement that names them', async () => {
    const f = fixtures[mode]!;
    const ci = await f.connect('read', f.tokens.ci);
    expect((await ci.query(`select count(*)::int as n from ${f.schema}.users`)).rows).toEqual([{ n: 40 }]);
    await f.su.query(`
      create function ${f.schema}.late_leak() returns setof text language sql as 'select password from ${f.schema}.users';
      create table ${f.schema}.late3 (id int, api_key text);
      insert into ${f.schema}.late3 values (1, 'late3_secret_key_value');
      grant select on ${f.schema}.late3 to ${f.t.pg.roles.reader.user};
    `);
    for (const sql of [`select * from ${f.schema}.late_leak()`, `select id from ${f.schema}.late3 where api_key like 'late3%'`]) {
      const err = await ci.query(sql).catch((e) => e);
      expect(err.code, sql).toBe('42501');
    }
    // Computing over it is refused, or with indirect: mask runs with every value masked.
    const computed = await ci.query(`select upper(api_key) as u, api_key || '' as c from ${f.schema}.late3`).catch((e) => e);
    if (mode === 'deny') expect(computed.code).toBe('42501');
    else expect(computed.rows).toEqual([{ u: '[masked]', c: '[masked]' }]);
  });
});

describe('layouts and catalogs that change under a session', () => {
  it('a FETCH described once is not trusted after its cursor was redeclared: rows of unknown layout are masked whole', async () => {
    const f = fixtures.deny!;
    await withSession(openAs(f), async (s) => {
      await roundTrip(s, serialize.query(`begin; declare c cursor for select name from ${f.schema}.users order by id`));
      const described = await roundTrip(s, serialize.parse({ name: 'f1', text: 'fetch all from c', types: [] }), serialize.describe({ type: 'S', name: 'f1' }), serialize.sync());
      expect(described.map((m) => m.type)).toContain('T');
      await roundTrip(s, serialize.query(`close c; declare c cursor for select id, password from ${f.schema}.users order by id`));
      const rows = await roundTrip(s, serialize.bind({ statement: 'f1', portal: '' }), serialize.execute({ portal: '' }), serialize.sync());
      const data = rows.filter((m) => m.type === 'D');
      expect(data).toHaveLength(40);
      expect(Buffer.concat(data.map((m) => m.payload)).toString('latin1')).not.toContain('correct-horse');
      await roundTrip(s, serialize.query('rollback'));
    });
  });

  it('COPY of a table with a generated column masks the right fields', async () => {
    const f = fixtures.deny!;
    const out = await psql(f.t, f.t.url('read'), f.tokens.ci, ['-c', `copy ${f.schema}.gen to stdout`]);
    expect(out.code).toBe(0);
    expect(out.stdout.trim()).toBe('1\t\\N');
  });

  it('a column added around Sluice to a table the catalog knows is masked whole until the catalog is read again', async () => {
    const f = fixtures.deny!;
    await f.su.query(`create table ${f.schema}.grow (id int); insert into ${f.schema}.grow values (1); grant select on ${f.schema}.grow to ${f.t.pg.roles.reader.user}`);
    const ci = await f.connect('read', f.tokens.ci);
    expect((await ci.query(`select * from ${f.schema}.grow`)).rows).toHaveLength(1);
    expect((await ci.query(`select * from ${f.schema}.grow`)).rows).toEqual([{ id: 1 }]);
    await f.su.query(`alter table ${f.schema}.grow add column api_key text; update ${f.schema}.grow set api_key = 'grown_secret'`);
    const got = await ci.query(`select * from ${f.schema}.grow`);
    expect(JSON.stringify(got.rows)).not.toContain('grown_secret');
  });

  it('system catalogs come back raw, and unqualified built-ins stay built-ins when a schema defines the same name', async () => {
    const f = fixtures.deny!;
    await f.su.query(`create function ${f.schema}.max(a int, b int) returns int language sql as 'select greatest(a, b)'`);
    const ci = await f.connect('read', f.tokens.ci);
    expect((await ci.query(`select relname from pg_class where relname = 'pg_class'`)).rows).toEqual([{ relname: 'pg_class' }]);
    expect((await ci.query(`select max(id) as m from ${f.schema}.users`)).rows).toEqual([{ m: 40 }]);
  });
});

describe('second probe round', () => {
  it.each(['deny', 'mask'] as const)('refuses RETURNING that computes over a masked column (indirect: %s)', async (mode) => {
    const f = fixtures[mode]!;
    const ci = await f.connect('write', f.tokens.ci);
    for (const sql of [
      `update ${f.schema}.users set name = name where id = 3 returning lower(password)`,
      `delete from ${f.schema}.users where id = 3100 returning md5(email) as m`,
      `update ${f.schema}.users set name = name where id = 3 returning password > 'pw-2' as cmp`,
    ]) {
      const err = await ci.query(sql).catch((e) => e);
      expect(err.code, sql).toBe('42501');
    }
    const direct = await ci.query(`update ${f.schema}.users set name = name where id = 3 returning id, password`);
    expect(direct.rows).toEqual([{ id: 3, password: '[masked]' }]);
  });

  it('runs the detectors over jsonb and arrays in binary format too', async () => {
    const f = fixtures.deny!;
    for (const binary of [false, true]) {
      const ci = await f.connect('read', f.tokens.ci, { binary } as never);
      const got = await ci.query(`select id, profile, tags from ${f.schema}.docs`);
      expect(JSON.stringify(got.rows), `binary: ${binary}`).not.toContain('secret-corp');
      expect(got.rows[0].id).toBe(1);
    }
    const copy = await psql(f.t, f.t.url('read'), f.tokens.ci, ['-c', `copy ${f.schema}.docs to stdout with (format binary)`]);
    expect(copy.code).toBe(0);
    expect(copy.stdout).not.toContain('secret-corp');
  });

  it('allows COPY FROM into masked columns with a write grant, and reads them back masked', async () => {
    const f = fixtures.deny!;
    const url = f.t.url('write');
    const load = await psql(f.t, url, f.tokens.ci, ['-c', `copy ${f.schema}.users (id, name, email, password) from stdin`], '900\tCopied\tcopied@example.com\tpw-copied\n\\.\n');
    expect(load.code, load.stderr).toBe(0);
    const ci = await f.connect('read', f.tokens.ci);
    const got = await ci.query(`select name, password from ${f.schema}.users where id = 900`);
    expect(got.rows).toEqual([{ name: 'Copied', password: '[masked]' }]);
    await f.su.query(`delete from ${f.schema}.users where id = 900`);
  });

  it('does not refuse a function in FROM named by a bare alias', async () => {
    const f = fixtures.deny!;
    const ci = await f.connect('read', f.tokens.ci);
    expect((await ci.query('select g from generate_series(1, 2) g')).rows).toEqual([{ g: 1 }, { g: 2 }]);
  });

  it('keeps what it knows of a named statement when a Parse that tried to redefine it fails', async () => {
    const f = fixtures.deny!;
    await withSession(openAs(f), async (s) => {
      await roundTrip(s, serialize.parse({ name: 'b', text: `select id, name from ${f.schema}.users where id = 4`, types: [] }), serialize.describe({ type: 'S', name: 'b' }), serialize.sync());
      const again = await roundTrip(s, serialize.parse({ name: 'b', text: 'select 1', types: [] }), serialize.sync());
      expect(again.some((m) => m.type === 'E')).toBe(true);
      const run = await roundTrip(s, serialize.bind({ statement: 'b', portal: '' }), serialize.execute({ portal: '' }), serialize.sync());
      const row = run.find((m) => m.type === 'D')!;
      expect(row.payload.toString('latin1')).toContain('User 4');
    });
  });
});

describe('indirect: mask does not follow a computed result out of its statement', () => {
  it.each([
    ['a cursor fetched later', (s: string) => `declare c cursor with hold for select lower(password) from ${s}.users`],
    ['a prepared statement', (s: string) => `prepare p_low as select lower(password) from ${s}.users`],
    ['a setting, which comes back in ParameterStatus', (s: string) => `select set_config('application_name', password, false) from ${s}.users where id = 7`],
  ])('refuses %s', async (_what, sql) => {
    const f = fixtures.mask!;
    const ci = await f.connect('read', f.tokens.ci);
    const err = await ci.query(sql(f.schema)).catch((e) => e);
    expect(err.code).toBe('42501');
  });
});
