import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startMaskingFixture, type MaskingFixture } from './fixture.js';

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
  // Planner statistics hold sampled values once a table is analyzed (autovacuum does it on its own).
  for (const f of Object.values(fixtures)) await f!.su.query(`analyze ${f!.schema}.users`);
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
