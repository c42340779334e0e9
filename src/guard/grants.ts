import { GRANTS, type GrantName } from '../config/schema.js';
import { statementLabel } from './describe.js';
import type { StatementFacts, StatementKind } from './facts.js';
import { normalizeSetting } from './settings.js';

/**
 * Which grant a statement needs. Grants are cumulative (read < write < ddl <
 * admin). The need is the highest of the kind, the effects and the tables
 * written, so a statement whose first keyword looks harmless but whose tree
 * writes (a data-modifying WITH, EXPLAIN ANALYZE of a DELETE, SELECT INTO)
 * needs what its effect needs.
 */
const KIND_GRANT: Record<StatementKind, GrantName> = {
  select: 'read',
  show: 'read',
  explain: 'read',
  set: 'read',
  reset: 'read',
  transaction: 'read',
  'copy.out': 'read',
  // The caller judges PREPARE and EXECUTE by the prepared body; by name alone EXECUTE is opaque.
  prepare: 'read',
  execute: 'read',
  deallocate: 'read',
  // FETCH, CLOSE, LISTEN, NOTIFY, DISCARD, VACUUM...: cursors and notifications are everyday reads, and
  // maintenance commands need ownership the backend role of a read grant lacks. LOCK and LOAD carry effects.
  utility: 'read',
  // Opaque statements are refused or let through by the opaque check; the grant adds nothing.
  call: 'read',
  do: 'read',
  insert: 'write',
  update: 'write',
  delete: 'write',
  merge: 'write',
  'copy.in': 'write',
  'ddl.create': 'ddl',
  'ddl.alter': 'ddl',
  'ddl.drop': 'ddl',
  truncate: 'ddl',
  grant: 'admin',
  revoke: 'admin',
  role: 'admin',
  // What the classifier could not name needs the grant that is trusted with everything.
  other: 'admin',
};

/**
 * Settings a read session may not change: turning read-only off is the
 * write grant's business, and session_replication_role switches off
 * triggers and foreign keys. Refused settings (role, search_path, ...) are
 * not here: no grant allows them, see default-deny.ts.
 */
const SETTING_GRANT: ReadonlyMap<string, GrantName> = new Map([
  ['default_transaction_read_only', 'write'],
  ['transaction_read_only', 'write'],
  ['session_replication_role', 'admin'],
]);

/**
 * Functions that write large objects: they change pg_largeobject, which the
 * table facts do not show and which a read role may be allowed to write.
 */
const LARGE_OBJECT_WRITERS: ReadonlySet<string> = new Set(['lo_from_bytea', 'lo_create', 'lo_creat', 'lo_put', 'lo_truncate', 'lo_truncate64', 'lo_unlink', 'lowrite', 'lo_lseek', 'lo_lseek64']);

/** The value SET TRANSACTION / SET SESSION CHARACTERISTICS reports when it turns read-only off. */
const READ_WRITE = /transaction_read_only\s*=\s*(0|false|off)\b|read\s+write/i;

/** Effects whose danger is not the grant's to allow; default-deny.ts refuses them. */
export const UNGRANTABLE_EFFECTS: readonly string[] = ['copy_program', 'copy_file'];

/**
 * Effects src/sql reports, with the grant each needs ($ stands for the
 * statement's label). Read-level effects are listed so that they are known:
 * an unknown effect needs admin. Settings and opaque statements are judged
 * elsewhere, so set_config, dynamic_sql and the set_* effects add nothing
 * here.
 */
const EFFECT_GRANT: ReadonlyMap<string, { grant: GrantName | null; what: string }> = new Map([
  ['set_config', { grant: 'read', what: '$' }],
  ['set_local', { grant: 'read', what: '$' }],
  ['set_role', { grant: 'read', what: '$' }],
  ['set_session_authorization', { grant: 'read', what: '$' }],
  ['set_search_path', { grant: 'read', what: '$' }],
  ['dynamic_setting', { grant: 'read', what: '$' }],
  ['dynamic_sql', { grant: 'read', what: '$' }],
  ['declare_cursor', { grant: 'read', what: '$' }],
  ['copy_stdout', { grant: 'read', what: '$' }],
  ['copy_stdin', { grant: 'write', what: '$' }],
  ['upsert', { grant: 'write', what: '$' }],
  ['data_modifying_cte', { grant: 'write', what: '$ with a data-modifying WITH' }],
  // PostgreSQL asks for UPDATE privilege for FOR UPDATE/SHARE: locking rows can stall writers.
  ['row_lock', { grant: 'write', what: '$ with FOR UPDATE/SHARE' }],
  ['lock_table', { grant: 'write', what: 'LOCK TABLE' }],
  ['select_into', { grant: 'ddl', what: 'SELECT INTO' }],
  ['create_table_as', { grant: 'ddl', what: 'CREATE TABLE AS' }],
  ['create_matview', { grant: 'ddl', what: 'CREATE MATERIALIZED VIEW' }],
  ['create_rule', { grant: 'ddl', what: 'CREATE RULE' }],
  ['create_function', { grant: 'ddl', what: 'CREATE FUNCTION' }],
  ['create_procedure', { grant: 'ddl', what: 'CREATE PROCEDURE' }],
  ['create_trigger', { grant: 'ddl', what: 'CREATE TRIGGER' }],
  ['alter_system', { grant: 'admin', what: 'ALTER SYSTEM' }],
  ['grant_role', { grant: 'admin', what: '$ of a role' }],
  ['load_library', { grant: 'admin', what: 'LOAD' }],
  ['copy_program', { grant: null, what: 'COPY with PROGRAM' }],
  ['copy_file', { grant: null, what: 'COPY with a server file' }],
]);

export interface GrantNeed {
  /** The least grant that allows the statement, or null when no grant does. */
  readonly grant: GrantName | null;
  /** What needs it, for messages: "DELETE", "SELECT with a data-modifying WITH". */
  readonly what: string;
}

export function grantRank(g: GrantName): number {
  return GRANTS.indexOf(g);
}

/** Whether a session with grant `have` may run what needs `need`. */
export function grantCovers(have: GrantName, need: GrantName): boolean {
  const h = grantRank(have);
  return h >= 0 && h >= grantRank(need);
}

export function requiredGrant(facts: StatementFacts): GrantNeed {
  const label = statementLabel(facts);
  let need: GrantNeed = { grant: Object.hasOwn(KIND_GRANT, facts.kind) ? KIND_GRANT[facts.kind] : 'admin', what: label };
  const raise = (grant: GrantName | null, what: string) => {
    if (need.grant === null) return;
    if (grant === null || grantRank(grant) > grantRank(need.grant)) need = { grant, what };
  };
  const effects = Array.isArray(facts.effects) ? facts.effects : [];
  const written = Array.isArray(facts.tablesWritten) ? facts.tablesWritten : [];
  for (const effect of effects) {
    if (effect === 'explain_analyze') {
      // EXPLAIN ANALYZE runs what it explains: the need is that statement's, counted by its kind and tables.
      if (written.length > 0 || effects.includes('data_modifying_cte')) raise('write', 'EXPLAIN ANALYZE of a data change');
      continue;
    }
    const known = EFFECT_GRANT.get(effect);
    if (known !== undefined) {
      if (known.grant !== 'read') raise(known.grant, known.what.replace('$', label));
    } else {
      // An effect this guard does not know yet is trusted to no one below admin.
      raise('admin', `${label} with effect ${/^[a-z_]{1,40}$/.test(effect) ? effect : 'unknown'}`);
    }
  }
  if (written.length > 0) raise('write', `${label} writing ${written.length === 1 ? 'a table' : 'tables'}`);
  const functions = Array.isArray(facts.functions) ? facts.functions : [];
  for (const fn of functions) {
    const bare = fn.toLowerCase().replace(/"/g, '').split('.').pop() ?? '';
    if (LARGE_OBJECT_WRITERS.has(bare)) raise('write', `${bare}(), which writes a large object`);
  }
  // SHOW only reads a setting; the rules below are about changing one.
  if (facts.setting !== undefined && facts.kind !== 'show') {
    const name = normalizeSetting(facts.setting.name);
    const grant = SETTING_GRANT.get(name);
    if (grant !== undefined) raise(grant, `changing ${name}`);
    else if (facts.setting.value !== undefined && READ_WRITE.test(facts.setting.value)) raise('write', 'changing transaction_read_only');
  }
  return need;
}
