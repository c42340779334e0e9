import { describe, expect, expectTypeOf, it } from 'vitest';
import { validateConfig } from '../../src/config/load.js';
import { STATEMENT_KINDS } from '../../src/config/schema.js';
import type { StatementKind } from '../../src/guard/facts.js';
import { issuesOf } from '../support/config-issues.js';

const base = {
  server: { tls: { self_signed: true } },
  resources: [{ name: 'orders', type: 'postgres', upstream: { host: 'db', database: 'orders' }, credentials: { read: { user: 'ro', password: '${env:RO}' } } }],
};
const withPolicy = (p: Record<string, unknown>) => ({ ...base, policies: [{ name: 'p', when: { groups: ['eng'] }, resources: ['orders'], ...p }] });


describe('statement rules in sluice.yaml', () => {
  it('the config kinds are the guard kinds', () => {
    expectTypeOf<(typeof STATEMENT_KINDS)[number]>().toEqualTypeOf<StatementKind>();
    expect(new Set(STATEMENT_KINDS).size).toBe(26);
  });

  it.each([
    { effect: 'deny', statements: { kinds: ['ddl.drop', 'truncate'] } },
    { effect: 'deny', statements: { tables: ['public.*', '*.users', 'pii.card_*', '"Weird".x'] } },
    { effect: 'deny', statements: { functions: ['pgp_sym_decrypt', 'dblink*', 'public.crypt', '*'] } },
    { effect: 'deny', statements: { kinds: ['delete'], tables: ['public.orders'], opaque: false } },
    { effect: 'deny', statements: { opaque: true } },
    { effect: 'deny', statements: { settings: ['statement_timeout'] } },
    { statements: { settings: ['role', 'search_path', 'myapp.tenant'] } },
    { statements: { opaque: true } },
  ])('accepts %o', (p) => {
    expect(issuesOf(withPolicy(p))).toEqual([]);
    const cfg = validateConfig(withPolicy(p));
    expect(cfg.policies[0]!.statements).toEqual(p.statements);
  });

  it.each([
    [{ effect: 'deny', statements: {} }, 'policies[0].statements: name at least one of kinds, tables, functions, opaque, settings'],
    [{ effect: 'deny', statements: { kinds: ['drop'] } }, 'policies[0].statements.kinds[0]'],
    [{ effect: 'deny', statements: { kinds: [] } }, 'policies[0].statements.kinds'],
    [{ effect: 'deny', statements: { tables: ['users'] } }, 'policies[0].statements.tables[0]: expected schema.table'],
    [{ effect: 'deny', statements: { tables: ['a.b.c'] } }, 'policies[0].statements.tables[0]: expected schema.table'],
    [{ effect: 'deny', statements: { functions: ['pg_read_file()'] } }, 'policies[0].statements.functions[0]: expected a function name'],
    [{ effect: 'deny', statements: { functions: ['*dblink'] } }, 'policies[0].statements.functions[0]: expected a function name'],
    [{ effect: 'deny', statements: { settings: ['role; drop'] } }, 'policies[0].statements.settings[0]: expected a setting name'],
    [{ effect: 'deny', statements: { kinds: ['select'], colour: 'red' } }, 'policies[0].statements: unknown key colour'],
    [{ statements: { kinds: ['ddl.drop'] } }, 'policies[0].statements.kinds: an allow rule can only permit settings or opaque statements'],
    [{ statements: { tables: ['public.x'] } }, 'policies[0].statements.tables: an allow rule can only permit'],
    [{ statements: { functions: ['pg_read_file'] } }, 'policies[0].statements.functions: an allow rule can only permit'],
    [{ statements: { opaque: false } }, 'policies[0].statements.opaque: an allow rule permits opaque statements with opaque: true'],
    [{ effect: 'deny', grants: ['read'], statements: { kinds: ['select'] } }, 'policies[0].grants: a policy has grants'],
    [{ effect: 'deny', max_session_duration: '1h', statements: { kinds: ['select'] } }, 'policies[0].max_session_duration: max_session_duration goes with grants'],
    [{ effect: 'deny', resources: undefined, statements: { kinds: ['select'] } }, 'policies[0].resources: statements go with resources'],
    [{ effect: 'deny', resources: ['billing'], statements: { kinds: ['select'] } }, 'policies[0].resources[0]: unknown resource billing'],
  ])('refuses %o with %s', (p, expected) => {
    const issues = issuesOf(withPolicy(p));
    expect(issues.some((i) => i.startsWith(expected)), issues.join('\n')).toBe(true);
  });

  it('a policy without grants, statements or permissions is still refused', () => {
    expect(issuesOf(withPolicy({}))).toContain('policies[0]: a policy needs resources and grants, resources and statements, or permissions');
  });
});
