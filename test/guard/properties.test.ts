import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GRANTS, STATEMENT_KINDS, type GrantName, type PolicyConfig } from '../../src/config/schema.js';
import { judgeStatement, judgeStatements } from '../../src/guard/decide.js';
import type { StatementFacts, StatementKind } from '../../src/guard/facts.js';
import { principal } from './fixtures.js';

const TABLES = ['orders', 'public.orders', 'public.users', 'users', '"Users"', 'pii.cards', 'app.items'];
const FUNCTIONS = ['now', 'lower', 'count', 'set_config', 'pg_read_file', 'pg_catalog.pg_read_file', 'PG_READ_FILE', '"pg_ls_dir"', 'dblink_exec', 'lo_export', 'my_dblink', 'crypt'];
const SETTINGS = ['role', 'ROLE', ' Role', 'search_path', 'session authorization', 'names', 'client_encoding', 'statement_timeout', 'transaction_read_only', 'all', 'myapp.tenant'];
const EFFECTS = [
  'data_modifying_cte', 'explain_analyze', 'select_into', 'copy_program', 'copy_file', 'create_rule', 'row_lock', 'upsert', 'lock_table',
  'create_function', 'create_table_as', 'alter_system', 'grant_role', 'load_library', 'copy_stdin', 'copy_stdout', 'declare_cursor',
  'set_config', 'dynamic_setting', 'dynamic_sql', 'set_local', 'future_effect',
];
/** Effects a read session must never get through. */
const EFFECTS_BEYOND_READ = EFFECTS.filter((e) => !['explain_analyze', 'copy_stdout', 'declare_cursor', 'set_config', 'dynamic_setting', 'dynamic_sql', 'set_local'].includes(e));
const TEXTS = ['SELECT 1', 'DROP TABLE x', '/* DELETE */ select', 'WITH d AS (DELETE FROM t) SELECT 1', 'do $$ $$', ''];
const GROUPS = ['eng', 'dba', 'ci'];
const DENIED = ['pg_read_file', 'pg_catalog.pg_read_file', 'PG_READ_FILE', '"pg_ls_dir"', 'dblink_exec', 'lo_export'];

/** Kinds a read session must never get through, whatever else the facts say. */
const BEYOND_READ: readonly StatementKind[] = ['insert', 'update', 'delete', 'merge', 'copy.in', 'ddl.create', 'ddl.alter', 'ddl.drop', 'truncate', 'grant', 'revoke', 'role', 'other'];

const factsArb: fc.Arbitrary<StatementFacts> = fc.record({
  kind: fc.constantFrom(...STATEMENT_KINDS),
  text: fc.constantFrom(...TEXTS),
  tablesRead: fc.subarray(TABLES, { maxLength: 3 }),
  tablesWritten: fc.oneof(fc.constant<string[]>([]), fc.subarray(TABLES, { maxLength: 2 })),
  columns: fc.constant([]),
  functions: fc.subarray(FUNCTIONS, { maxLength: 3 }),
  opaque: fc.boolean(),
  effects: fc.oneof(fc.constant<string[]>([]), fc.subarray(EFFECTS, { maxLength: 2 })),
  setting: fc.option(fc.record({ name: fc.constantFrom(...SETTINGS), value: fc.constant('x') }), { nil: undefined }),
});
/** Facts that may carry a prepared body, itself any facts. */
const factsWithBodyArb: fc.Arbitrary<StatementFacts> = fc
  .tuple(factsArb, fc.option(factsArb, { nil: undefined }))
  .map(([f, body]) => (body === undefined ? f : { ...f, body }));

const whenArb = fc.record({ groups: fc.subarray(GROUPS, { minLength: 1 }) });
const resourcesArb = fc.constantFrom('*', 'orders', 'billing').map((r) => [r]);

const denyPolicyArb: fc.Arbitrary<PolicyConfig> = fc.record({
  name: fc.constantFrom('deny-a', 'deny-m', 'deny-z'),
  effect: fc.constant('deny' as const),
  when: whenArb,
  resources: resourcesArb,
  statements: fc
    .record(
      {
        kinds: fc.subarray([...STATEMENT_KINDS], { minLength: 1, maxLength: 4 }),
        tables: fc.subarray(['public.*', '*.users', 'pii.*', 'app.items'], { minLength: 1 }),
        functions: fc.subarray(['crypt*', 'now', 'pg_catalog.lower'], { minLength: 1 }),
        opaque: fc.boolean(),
        settings: fc.subarray(['statement_timeout', 'role'], { minLength: 1 }),
      },
      { requiredKeys: [] },
    )
    .filter((s) => Object.keys(s).length > 0),
});

const allowPolicyArb: fc.Arbitrary<PolicyConfig> = fc.record({
  name: fc.constantFrom('allow-b', 'allow-y'),
  effect: fc.constant('allow' as const),
  when: whenArb,
  resources: resourcesArb,
  statements: fc.oneof(
    fc.record({ settings: fc.subarray(SETTINGS, { minLength: 1 }) }),
    fc.record({ opaque: fc.constant(true as const) }),
    fc.record({ settings: fc.subarray(SETTINGS, { minLength: 1 }), opaque: fc.constant(true as const) }),
  ),
});

const policiesArb = fc.array(fc.oneof(denyPolicyArb, allowPolicyArb), { maxLength: 5 });
const principalArb = fc.subarray(GROUPS).map((groups) => principal({ groups }));
const grantArb = fc.constantFrom(...GRANTS);

describe('guard properties', () => {
  it('a read session never gets a write past the guard, whatever the rules', () => {
    fc.assert(
      fc.property(factsWithBodyArb, policiesArb, principalArb, (facts, policies, who) => {
        const v = judgeStatement({ principal: who, resource: 'orders', grant: 'read', facts, policies });
        if (v.action === 'allow') {
          for (const f of facts.body ? [facts, facts.body] : [facts]) {
            expect(f.tablesWritten).toEqual([]);
            expect(BEYOND_READ).not.toContain(f.kind);
            for (const e of EFFECTS_BEYOND_READ) expect(f.effects).not.toContain(e);
          }
        }
      }),
      { numRuns: 3000 },
    );
  });

  it('a matching deny rule always wins, for every grant and whatever allow rules exist', () => {
    fc.assert(
      fc.property(factsArb, policiesArb, grantArb, fc.constantFrom(...GROUPS), (facts, others, grant, group) => {
        const deny: PolicyConfig = { name: 'deny-kind', effect: 'deny', when: { groups: [group] }, resources: ['*'], statements: { kinds: [facts.kind] } };
        const policies = [...others, deny];
        const v = judgeStatement({ principal: principal({ groups: [group] }), resource: 'orders', grant, facts, policies });
        expect(v.action).toBe('deny');
        const denyNames = policies.filter((p) => p.effect === 'deny').map((p) => p.name);
        expect(denyNames).toContain(v.action === 'deny' ? v.rule : '');
      }),
      { numRuns: 2000 },
    );
  });

  it('the built-in function list denies every spelling for every grant and rule set', () => {
    fc.assert(
      fc.property(factsArb, fc.constantFrom(...DENIED), policiesArb, grantArb, principalArb, (facts, fn, policies, grant, who) => {
        const v = judgeStatement({ principal: who, resource: 'orders', grant, facts: { ...facts, functions: [...facts.functions, fn] }, policies });
        expect(v.action).toBe('deny');
      }),
      { numRuns: 1000 },
    );
  });

  it('a higher grant allows at least what a lower one does', () => {
    fc.assert(
      fc.property(factsArb, policiesArb, principalArb, (facts, policies, who) => {
        const allowed = (grant: GrantName) => judgeStatement({ principal: who, resource: 'orders', grant, facts, policies }).action === 'allow';
        for (let i = 1; i < GRANTS.length; i++) if (allowed(GRANTS[i - 1]!)) expect(allowed(GRANTS[i]!)).toBe(true);
      }),
      { numRuns: 1500 },
    );
  });

  it('adding a deny rule never turns a denial into an allow', () => {
    fc.assert(
      fc.property(factsArb, policiesArb, denyPolicyArb, grantArb, principalArb, (facts, policies, extra, grant, who) => {
        const before = judgeStatement({ principal: who, resource: 'orders', grant, facts, policies });
        const after = judgeStatement({ principal: who, resource: 'orders', grant, facts, policies: [...policies, extra] });
        if (before.action === 'deny') expect(after.action).toBe('deny');
      }),
      { numRuns: 1500 },
    );
  });

  it('a message is allowed only when every statement in it is, and reports the first denial', () => {
    fc.assert(
      fc.property(fc.array(factsArb, { maxLength: 5 }), policiesArb, grantArb, principalArb, (statements, policies, grant, who) => {
        const ctx = { principal: who, resource: 'orders', grant, policies };
        const each = statements.map((facts) => judgeStatement({ ...ctx, facts }));
        const whole = judgeStatements({ ...ctx, statements });
        const firstDenial = each.find((v) => v.action === 'deny');
        expect(whole).toEqual(firstDenial ?? expect.objectContaining({ action: 'allow' }));
      }),
      { numRuns: 1000 },
    );
  });
});
