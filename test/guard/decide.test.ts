import { describe, expect, it } from 'vitest';
import { GRANTS } from '../../src/config/schema.js';
import { judgeStatements, judgeUnparseable } from '../../src/guard/decide.js';
import { statementLabel } from '../../src/guard/describe.js';
import type { StatementFacts } from '../../src/guard/facts.js';
import { facts, judge, policies, principal } from './fixtures.js';

const rules = policies(
  { name: 'no-ddl-in-ci', effect: 'deny', when: { kind: 'machine' }, resources: ['orders'], statements: { kinds: ['ddl.create', 'ddl.alter', 'ddl.drop', 'truncate'] } },
  { name: 'no-deletes', effect: 'deny', when: { groups: ['eng'] }, resources: ['*'], statements: { kinds: ['delete'] } },
  { name: 'no-pii', effect: 'deny', when: { groups: ['contractors'] }, resources: ['orders'], statements: { tables: ['*.users', 'pii.*'] } },
  { name: 'no-orders-writes', effect: 'deny', when: { groups: ['contractors'] }, resources: ['orders'], statements: { kinds: ['insert', 'update'], tables: ['public.orders'] } },
  { name: 'no-crypto', effect: 'deny', when: { groups: ['eng'] }, resources: ['orders'], statements: { functions: ['pgp_sym_decrypt', 'crypt*'] } },
  { name: 'no-opaque', effect: 'deny', when: { subjects: ['mallory'] }, resources: ['orders'], statements: { opaque: true } },
  { name: 'billing-only', effect: 'deny', when: { groups: ['eng'] }, resources: ['billing'], statements: { kinds: ['select'] } },
);
const ci = principal({ kind: 'machine', subject: 'ci', groups: ['ci'] });
const contractor = principal({ subject: 'carl', groups: ['contractors'] });

describe('configured deny rules', () => {
  const cases: Array<[string, StatementFacts, ReturnType<typeof principal>, string | null, string?]> = [
    ['DROP TABLE by CI', facts('ddl.drop', 'DROP TABLE orders'), ci, 'no-ddl-in-ci', 'sluice: DROP TABLE denied by rule no-ddl-in-ci'],
    ['drop table, lower case and a comment', facts('ddl.drop', '/* x */ -- y\n drop   table if exists orders'), ci, 'no-ddl-in-ci', 'sluice: DROP TABLE denied by rule no-ddl-in-ci'],
    ['CREATE OR REPLACE VIEW', facts('ddl.create', 'CREATE OR REPLACE VIEW v AS SELECT 1'), ci, 'no-ddl-in-ci', 'sluice: CREATE VIEW denied by rule no-ddl-in-ci'],
    ['CREATE MATERIALIZED VIEW', facts('ddl.create', 'create materialized view v as select 1'), ci, 'no-ddl-in-ci', 'sluice: CREATE MATERIALIZED VIEW denied by rule no-ddl-in-ci'],
    ['SELECT INTO counts as create', facts('select', 'SELECT * INTO t FROM orders', { tablesWritten: ['t'], effects: ['select_into'] }), ci, 'no-ddl-in-ci'],
    ['SELECT by CI', facts('select', 'SELECT 1'), ci, null],
    ['DELETE', facts('delete', 'DELETE FROM orders WHERE id = 1', { tablesWritten: ['orders'], bounded: true }), principal(), 'no-deletes', 'sluice: DELETE denied by rule no-deletes'],
    ['DELETE hidden in a WITH of a SELECT', facts('select', 'WITH d AS (DELETE FROM orders RETURNING id) SELECT * FROM d', { tablesWritten: ['orders'], effects: ['data_modifying_cte'] }), principal(), 'no-deletes', 'sluice: SELECT denied by rule no-deletes'],
    ['DELETE hidden in a WITH of an INSERT', facts('insert', 'WITH d AS (DELETE FROM a RETURNING *) INSERT INTO b SELECT * FROM d', { tablesWritten: ['a', 'b'], effects: ['data_modifying_cte'] }), principal(), 'no-deletes'],
    ['EXPLAIN ANALYZE DELETE', facts('explain', 'EXPLAIN ANALYZE DELETE FROM orders', { tablesWritten: ['orders'], effects: ['explain_analyze'] }), principal(), 'no-deletes'],
    ['INSERT is not a DELETE', facts('insert', 'INSERT INTO orders VALUES (1)', { tablesWritten: ['orders'] }), principal(), null],
    ['users table in any schema', facts('select', 'SELECT * FROM app.users', { tablesRead: ['app.users'] }), contractor, 'no-pii', 'sluice: SELECT denied by rule no-pii (table app.users)'],
    ['unqualified users', facts('select', 'SELECT * FROM users', { tablesRead: ['users'] }), contractor, 'no-pii'],
    ['quoted and upper case', facts('select', 'SELECT * FROM "PUBLIC"."Users"', { tablesRead: ['"PUBLIC"."Users"'] }), contractor, 'no-pii'],
    ['users in a subquery', facts('select', 'SELECT 1 FROM orders WHERE EXISTS (SELECT 1 FROM public.users)', { tablesRead: ['public.orders', 'public.users'] }), contractor, 'no-pii'],
    ['users written', facts('update', 'UPDATE users SET x = 1', { tablesWritten: ['public.users'] }), contractor, 'no-pii'],
    ['pii schema', facts('select', 'SELECT * FROM pii.cards', { tablesRead: ['pii.cards'] }), contractor, 'no-pii'],
    ['three-part name', facts('select', 'SELECT * FROM orders.pii.cards', { tablesRead: ['orders.pii.cards'] }), contractor, 'no-pii'],
    ['users_archive is not users', facts('select', 'SELECT * FROM public.users_archive', { tablesRead: ['public.users_archive'] }), contractor, null],
    ['kinds and tables together: insert into orders', facts('insert', 'INSERT INTO orders VALUES (1)', { tablesWritten: ['public.orders'] }), contractor, 'no-orders-writes', 'sluice: INSERT denied by rule no-orders-writes (table public.orders)'],
    ['kinds and tables together: select from orders', facts('select', 'SELECT * FROM orders', { tablesRead: ['public.orders'] }), contractor, null],
    ['kinds and tables together: insert elsewhere', facts('insert', 'INSERT INTO items VALUES (1)', { tablesWritten: ['public.items'] }), contractor, null],
    ['function exact', facts('select', "SELECT pgp_sym_decrypt(x, 'k') FROM t", { functions: ['pgp_sym_decrypt'] }), principal(), 'no-crypto', 'sluice: SELECT denied by rule no-crypto (function pgp_sym_decrypt)'],
    ['function prefix, qualified', facts('select', "SELECT public.crypt('a', gen_salt('bf'))", { functions: ['public.crypt', 'gen_salt'] }), principal(), 'no-crypto'],
    ['function in WHERE of a subquery', facts('select', "SELECT 1 WHERE 1 IN (SELECT length(CRYPT('a','b')))", { functions: ['length', 'crypt'] }), principal(), 'no-crypto'],
    ['opaque DO by mallory, admin grant', facts('do', 'DO $$ BEGIN END $$', { opaque: true }), principal({ subject: 'mallory' }), 'no-opaque'],
    ['another resource', facts('select', 'SELECT 1'), principal(), null],
  ];

  it.each(cases)('%s', (_name, f, who, rule, reason) => {
    const v = judge(f, 'admin', rules, who);
    if (rule === null) {
      expect(v).toEqual({ action: 'allow', rule: 'sluice-grants' });
    } else {
      expect(v).toMatchObject({ action: 'deny', rule, sqlstate: '42501' });
      if (reason) expect(v.action === 'deny' && v.reason).toBe(reason);
    }
  });

  it('applies to the resources the rule names only', () => {
    const select = facts('select', 'SELECT 1');
    expect(judgeStatements({ principal: principal(), resource: 'billing', grant: 'read', statements: [select], policies: rules })).toMatchObject({ action: 'deny', rule: 'billing-only' });
    expect(judgeStatements({ principal: principal(), resource: '*', grant: 'read', statements: [select], policies: rules })).toEqual({ action: 'allow', rule: 'sluice-grants' });
  });

  it('a deny rule wins over the grant, allow rules and order; the first by name is reported', () => {
    const drop = facts('ddl.drop', 'DROP TABLE orders');
    const both = [
      ...policies({ name: 'z-allow-opaque', when: { kind: 'machine' }, resources: ['*'], statements: { opaque: true } }),
      ...policies({ name: 'b-no-drop', effect: 'deny', when: { kind: 'machine' }, resources: ['*'], statements: { kinds: ['ddl.drop'] } }),
      ...rules,
    ];
    expect(judge(drop, 'admin', both, ci)).toMatchObject({ action: 'deny', rule: 'b-no-drop' });
    expect(judge(drop, 'admin', [...both].reverse(), ci)).toMatchObject({ action: 'deny', rule: 'b-no-drop' });
  });
});

describe('opaque statements', () => {
  const opaque: StatementFacts[] = [
    facts('do', "DO $$ BEGIN EXECUTE 'DROP TABLE orders'; END $$", { opaque: true }),
    facts('call', 'CALL cleanup()', { opaque: true, functions: ['cleanup'] }),
    facts('execute', 'EXECUTE stmt1', { opaque: true }),
    facts('ddl.create', 'CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END $$', { opaque: true }),
    // DO and CALL are opaque whatever the facts claim.
    facts('do', 'DO $$ BEGIN END $$', { opaque: false }),
  ];
  const allowOpaque = policies({ name: 'ci-may-call', when: { kind: 'machine' }, resources: ['orders'], statements: { opaque: true } });

  it.each(opaque)('%# is denied below admin, allowed for admin: %o', (f) => {
    for (const g of GRANTS) {
      const v = judge(f, g);
      if (g === 'admin') expect(v.action).toBe('allow');
      else {
        expect(v).toMatchObject({ action: 'deny', rule: 'sluice-opaque', sqlstate: '42501' });
        expect(v.action === 'deny' && v.reason).toContain('cannot be judged from its text');
      }
    }
  });

  it('an allow rule with opaque: true lets the principals it matches run them, still within their grant', () => {
    expect(judge(opaque[1]!, 'read', allowOpaque, ci)).toEqual({ action: 'allow', rule: 'ci-may-call' });
    expect(judge(opaque[1]!, 'read', allowOpaque, principal())).toMatchObject({ action: 'deny', rule: 'sluice-opaque' });
    // Opaque but visibly writing: the grant still has to cover the write, and the DDL kind.
    expect(judge(facts('call', 'CALL p()', { opaque: true, tablesWritten: ['orders'] }), 'read', allowOpaque, ci)).toMatchObject({ rule: 'sluice-grants' });
    expect(judge(opaque[3]!, 'write', allowOpaque, ci)).toMatchObject({ action: 'deny', rule: 'sluice-grants', reason: 'sluice: CREATE FUNCTION needs grant ddl; this session has grant write' });
  });

  it('EXECUTE judged by the prepared body the caller passes', () => {
    const body = facts('execute', 'EXECUTE del', { opaque: false, tablesWritten: ['orders'] });
    expect(judge(body, 'read')).toMatchObject({ action: 'deny', rule: 'sluice-grants' });
    expect(judge(body, 'write')).toEqual({ action: 'allow', rule: 'sluice-grants' });
  });
});

describe('messages with several statements', () => {
  const ctx = { principal: principal(), resource: 'orders', policies: rules };
  const select = facts('select', 'SELECT 1');
  const del = facts('delete', 'DELETE FROM orders', { tablesWritten: ['orders'] });
  const drop = facts('ddl.drop', 'DROP TABLE orders');

  it('one denial denies the whole message and the first is reported', () => {
    expect(judgeStatements({ ...ctx, grant: 'read', statements: [select, drop, del] })).toMatchObject({ action: 'deny', rule: 'sluice-grants', reason: 'sluice: DROP TABLE needs grant ddl; this session has grant read' });
    expect(judgeStatements({ ...ctx, grant: 'ddl', statements: [select, drop, del] })).toMatchObject({ action: 'deny', rule: 'no-deletes' });
    expect(judgeStatements({ ...ctx, grant: 'ddl', statements: [select, drop] })).toEqual({ action: 'allow', rule: 'sluice-grants' });
    expect(judgeStatements({ ...ctx, grant: 'read', statements: [] })).toEqual({ action: 'allow', rule: 'sluice-grants' });
  });

  it('reports the allow rule that lifted a refusal', () => {
    const pols = policies({ name: 'path-ok', when: { groups: ['eng'] }, resources: ['*'], statements: { settings: ['search_path'] } });
    const setPath = facts('set', 'SET search_path = app', { setting: { name: 'search_path', value: 'app' } });
    expect(judgeStatements({ ...ctx, policies: pols, grant: 'read', statements: [select, setPath, select] })).toEqual({ action: 'allow', rule: 'path-ok' });
  });
});

describe('unparseable text', () => {
  it('is denied with a clean reason', () => {
    expect(judgeUnparseable('syntax error at or near "SELEC"')).toEqual({
      action: 'deny',
      rule: 'sluice-unparseable',
      reason: 'sluice: statement denied by rule sluice-unparseable: syntax error at or near "SELEC"; Sluice only forwards statements it can parse',
      sqlstate: '42501',
    });
    const v = judgeUnparseable(`too long\n\u0000\u001b[31m${'x'.repeat(500)}`);
    expect(v.action === 'deny' && v.reason).not.toMatch(/[\u0000-\u001f]/);
    expect(v.action === 'deny' && v.reason.length).toBeLessThan(300);
  });
});

describe('statement labels', () => {
  it.each([
    [facts('ddl.create', 'CREATE UNIQUE INDEX i ON t (a)'), 'CREATE INDEX'],
    [facts('ddl.create', 'create temp table t (a int)'), 'CREATE TABLE'],
    [facts('ddl.alter', 'ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO x'), 'ALTER DEFAULT PRIVILEGES'],
    [facts('ddl.drop', '/* nested /* comment */ DROP TABLE */ DROP SCHEMA s CASCADE'), 'DROP SCHEMA'],
    [facts('ddl.drop', 'DELETE FROM looks_like_a_drop'), 'DROP'],
    [facts('role', 'ALTER USER bob WITH SUPERUSER'), 'ALTER USER'],
    [facts('role', 'x'), 'role change'],
    [facts('transaction', 'rollback'), 'ROLLBACK'],
    [facts('utility', 'VACUUM FULL'), 'VACUUM'],
    [facts('copy.in', 'COPY t FROM STDIN'), 'COPY FROM'],
    [facts('select', '\u0007\nDROP TABLE'), 'SELECT'],
  ])('%# %o is %s', (f, label) => {
    expect(statementLabel(f)).toBe(label);
  });
});
