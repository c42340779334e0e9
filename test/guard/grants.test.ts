import { describe, expect, it } from 'vitest';
import { GRANTS, type GrantName } from '../../src/config/schema.js';
import { grantCovers, requiredGrant } from '../../src/guard/grants.js';
import type { StatementFacts } from '../../src/guard/facts.js';
import { facts, judge } from './fixtures.js';

const t = (name: string) => [name];

/** [facts, least grant that allows it]: each case is also run against every grant below and above. */
const cases: Array<[StatementFacts, GrantName]> = [
  [facts('select', 'SELECT * FROM orders', { tablesRead: t('orders') }), 'read'],
  [facts('select', 'select 1'), 'read'],
  [facts('show', 'SHOW work_mem'), 'read'],
  [facts('explain', 'EXPLAIN SELECT * FROM orders', { tablesRead: t('orders') }), 'read'],
  [facts('explain', 'EXPLAIN ANALYZE SELECT * FROM orders', { tablesRead: t('orders'), effects: ['explain_analyze'] }), 'read'],
  [facts('set', 'SET statement_timeout = 5000', { setting: { name: 'statement_timeout', value: '5000' } }), 'read'],
  [facts('set', 'SET application_name TO x', { setting: { name: 'application_name', value: 'x' } }), 'read'],
  [facts('reset', 'RESET ALL', { setting: { name: 'all' } }), 'read'],
  [facts('reset', 'RESET work_mem', { setting: { name: 'work_mem' } }), 'read'],
  [facts('transaction', 'BEGIN'), 'read'],
  [facts('transaction', 'COMMIT'), 'read'],
  [facts('copy.out', 'COPY orders TO STDOUT', { tablesRead: t('orders') }), 'read'],
  [facts('prepare', 'PREPARE q AS SELECT 1'), 'read'],
  [facts('execute', 'EXECUTE q', { opaque: false }), 'read'],
  [facts('deallocate', 'DEALLOCATE q'), 'read'],
  [facts('select', "SELECT set_config('application_name', 'x', false)", { functions: ['set_config'], setting: { name: 'application_name', value: 'x' } }), 'read'],
  [facts('set', 'SET default_transaction_read_only = off', { setting: { name: 'default_transaction_read_only', value: 'off' } }), 'write'],
  [facts('set', 'SET transaction_read_only = off', { setting: { name: 'TRANSACTION_READ_ONLY', value: 'off' } }), 'write'],
  [facts('set', 'SET session_replication_role = replica', { setting: { name: 'session_replication_role', value: 'replica' } }), 'admin'],
  [facts('insert', 'INSERT INTO orders VALUES (1)', { tablesWritten: t('orders') }), 'write'],
  [facts('update', 'UPDATE orders SET a = 1 WHERE id = 2', { tablesWritten: t('orders'), bounded: true }), 'write'],
  [facts('delete', 'DELETE FROM orders', { tablesWritten: t('orders'), bounded: false }), 'write'],
  [facts('merge', 'MERGE INTO orders USING x ON true WHEN MATCHED THEN DELETE', { tablesWritten: t('orders'), tablesRead: t('x') }), 'write'],
  [facts('copy.in', 'COPY orders FROM STDIN', { tablesWritten: t('orders') }), 'write'],
  // Effects, not first keywords.
  [facts('select', 'WITH d AS (DELETE FROM orders RETURNING *) SELECT * FROM d', { tablesWritten: t('orders'), effects: ['data_modifying_cte'] }), 'write'],
  [facts('select', 'WITH d AS (DELETE FROM orders RETURNING *) SELECT 1', { effects: ['data_modifying_cte'] }), 'write'],
  [facts('explain', 'EXPLAIN ANALYZE DELETE FROM orders', { tablesWritten: t('orders'), effects: ['explain_analyze'] }), 'write'],
  [facts('explain', 'explain (analyze) with d as (delete from orders returning 1) select 1', { effects: ['explain_analyze', 'data_modifying_cte'] }), 'write'],
  [facts('explain', 'EXPLAIN DELETE FROM orders', { tablesWritten: t('orders') }), 'write'],
  [facts('select', 'SELECT * INTO copy_of_orders FROM orders', { tablesRead: t('orders'), tablesWritten: t('copy_of_orders'), effects: ['select_into'] }), 'ddl'],
  [facts('ddl.create', 'CREATE TABLE t (a int)', { tablesWritten: t('t') }), 'ddl'],
  [facts('ddl.create', 'CREATE TABLE t AS SELECT * FROM orders', { tablesRead: t('orders'), tablesWritten: t('t') }), 'ddl'],
  [facts('ddl.create', 'CREATE RULE r AS ON INSERT TO orders DO INSTEAD NOTHING', { effects: ['create_rule'] }), 'ddl'],
  [facts('ddl.alter', 'ALTER TABLE orders ADD COLUMN b int'), 'ddl'],
  [facts('ddl.drop', 'DROP TABLE orders'), 'ddl'],
  [facts('truncate', 'TRUNCATE orders', { tablesWritten: t('orders') }), 'ddl'],
  [facts('utility', 'VACUUM orders'), 'read'],
  [facts('utility', 'FETCH 100 FROM c'), 'read'],
  [facts('utility', 'LISTEN jobs'), 'read'],
  [facts('select', 'DECLARE c CURSOR FOR SELECT * FROM orders', { tablesRead: t('orders'), effects: ['declare_cursor'] }), 'read'],
  [facts('copy.out', 'COPY orders TO STDOUT', { tablesRead: t('orders'), effects: ['copy_stdout'] }), 'read'],
  [facts('set', 'SET LOCAL statement_timeout = 1', { setting: { name: 'statement_timeout', value: '1' }, effects: ['set_local'] }), 'read'],
  [facts('select', 'SELECT * FROM orders FOR UPDATE', { tablesRead: t('orders'), effects: ['row_lock'] }), 'write'],
  [facts('insert', 'INSERT INTO orders VALUES (1) ON CONFLICT (id) DO UPDATE SET n = 1', { tablesWritten: t('orders'), effects: ['upsert'] }), 'write'],
  [facts('copy.in', 'COPY orders FROM STDIN', { tablesWritten: t('orders'), effects: ['copy_stdin'] }), 'write'],
  [facts('utility', 'LOCK TABLE orders IN ACCESS EXCLUSIVE MODE', { tablesRead: t('orders'), effects: ['lock_table'] }), 'write'],
  [facts('ddl.create', 'CREATE TABLE t AS SELECT 1', { tablesWritten: t('t'), effects: ['create_table_as'] }), 'ddl'],
  [facts('select', 'CREATE TABLE t AS SELECT 1', { tablesWritten: t('t'), effects: ['create_table_as'] }), 'ddl'],
  [facts('ddl.create', 'CREATE FUNCTION f() RETURNS int AS $$ SELECT 1 $$ LANGUAGE sql', { effects: ['create_function'] }), 'ddl'],
  [facts('ddl.create', 'CREATE TRIGGER t BEFORE INSERT ON orders EXECUTE FUNCTION f()', { effects: ['create_trigger'] }), 'ddl'],
  [facts('ddl.alter', "ALTER SYSTEM SET work_mem = '1GB'", { setting: { name: 'work_mem', value: '1GB' }, effects: ['alter_system'] }), 'admin'],
  [facts('grant', 'GRANT pg_read_server_files TO bob', { effects: ['grant_role'] }), 'admin'],
  [facts('utility', "LOAD 'auto_explain'", { effects: ['load_library'] }), 'admin'],
  [facts('grant', 'GRANT SELECT ON orders TO bob'), 'admin'],
  [facts('revoke', 'REVOKE SELECT ON orders FROM bob'), 'admin'],
  [facts('role', 'CREATE ROLE bob'), 'admin'],
  [facts('role', 'ALTER ROLE bob SUPERUSER'), 'admin'],
  [facts('other', 'IMPORT FOREIGN SCHEMA x FROM SERVER s INTO y'), 'admin'],
  [facts('select', 'SELECT 1', { effects: ['some_future_effect'] }), 'admin'],
];

describe('grants', () => {
  it('grants are cumulative', () => {
    expect(GRANTS).toEqual(['read', 'write', 'ddl', 'admin']);
    for (const have of GRANTS) for (const need of GRANTS) expect(grantCovers(have, need)).toBe(GRANTS.indexOf(have) >= GRANTS.indexOf(need));
    expect(grantCovers('superuser' as GrantName, 'read')).toBe(false);
  });

  it.each(cases)('%# %o needs %s', (f, need) => {
    expect(requiredGrant(f).grant).toBe(need);
    for (const have of GRANTS) {
      const v = judge(f, have);
      expect(v.action, `${f.text} with grant ${have}`).toBe(GRANTS.indexOf(have) >= GRANTS.indexOf(need) ? 'allow' : 'deny');
      if (v.action === 'deny') {
        expect(v).toMatchObject({ rule: 'sluice-grants', sqlstate: '42501' });
        expect(v.reason).toContain(`needs grant ${need}; this session has grant ${have}`);
      }
    }
  });

  it('names the statement and both grants in the refusal', () => {
    expect(judge(facts('delete', 'DELETE FROM orders WHERE id = 1', { tablesWritten: ['orders'] }), 'read')).toEqual({
      action: 'deny',
      rule: 'sluice-grants',
      reason: 'sluice: DELETE needs grant write; this session has grant read',
      sqlstate: '42501',
    });
    expect(judge(facts('ddl.drop', 'DROP TABLE orders'), 'write')).toMatchObject({ reason: 'sluice: DROP TABLE needs grant ddl; this session has grant write' });
    expect(judge(facts('select', 'WITH d AS (DELETE FROM orders RETURNING *) SELECT 1', { effects: ['data_modifying_cte'] }), 'read')).toMatchObject({
      reason: 'sluice: SELECT with a data-modifying WITH needs grant write; this session has grant read',
    });
    expect(judge(facts('explain', 'EXPLAIN ANALYZE DELETE FROM orders', { tablesWritten: ['orders'], effects: ['explain_analyze'] }), 'read')).toMatchObject({
      reason: 'sluice: EXPLAIN ANALYZE of a data change needs grant write; this session has grant read',
    });
    expect(judge(facts('select', 'SELECT * INTO x FROM orders', { tablesWritten: ['x'], effects: ['select_into'] }), 'write')).toMatchObject({
      reason: 'sluice: SELECT INTO needs grant ddl; this session has grant write',
    });
  });

  it('no grant allows COPY with PROGRAM or a server file, admin included', () => {
    for (const effect of ['copy_program', 'copy_file']) {
      for (const kind of ['copy.in', 'copy.out'] as const) {
        const f = facts(kind, `COPY orders ${kind === 'copy.in' ? 'FROM' : 'TO'} PROGRAM 'x'`, { effects: [effect] });
        expect(requiredGrant(f).grant).toBeNull();
        for (const g of GRANTS) expect(judge(f, g)).toMatchObject({ action: 'deny', rule: 'sluice-default-functions' });
      }
    }
  });

  it('PREPARE inherits the verdict of the statement it prepares', () => {
    const del = facts('delete', '', { tablesWritten: ['orders'] });
    const prepare = facts('prepare', 'PREPARE d AS DELETE FROM orders', { tablesWritten: ['orders'], body: del });
    expect(judge(prepare, 'read')).toMatchObject({ action: 'deny', rule: 'sluice-grants' });
    expect(judge(prepare, 'write')).toEqual({ action: 'allow', rule: 'sluice-grants' });
    // Even when the PREPARE's own facts hide what the body does.
    const hidden = facts('prepare', 'PREPARE s AS SELECT 1', { body: facts('select', '', { functions: ['pg_read_file'] }) });
    expect(judge(hidden, 'admin')).toMatchObject({ action: 'deny', rule: 'sluice-default-functions' });
  });

  it('an unknown kind needs admin', () => {
    const f = facts('constructor' as never, 'x');
    expect(requiredGrant(f).grant).toBe('admin');
    expect(judge(f, 'ddl').action).toBe('deny');
  });
});
