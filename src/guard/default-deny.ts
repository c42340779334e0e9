import { UNGRANTABLE_EFFECTS } from './grants.js';
import type { StatementFacts } from './facts.js';
import { functionMatches, functionName } from './patterns.js';
import { showName } from '../policy/format.js';
import { isRefusedSetting, normalizeSetting } from './settings.js';

/** The rule named when the built-in list denies a statement. */
export const DEFAULT_DENY_RULE = 'sluice-default-functions';

/**
 * Functions no grant may call through Sluice: they read or list server files,
 * move data between the server's file system and the database, end other
 * sessions, change the server's configuration, read the change stream of a
 * replication slot (every row of every table), or open connections from the
 * database server to anywhere (dblink). `*` ends a prefix.
 */
export const DEFAULT_DENIED_FUNCTIONS: readonly string[] = [
  'pg_read_file',
  'pg_read_binary_file',
  'pg_ls_dir',
  'pg_stat_file',
  'pg_ls_logdir',
  'pg_ls_waldir',
  'pg_ls_tmpdir',
  'pg_ls_archive_statusdir',
  'pg_ls_logicalsnapdir',
  'pg_ls_logicalmapdir',
  'pg_ls_replslotdir',
  'pg_file_write',
  'pg_file_rename',
  'pg_file_unlink',
  'pg_file_sync',
  'pg_logdir_ls',
  'lo_import',
  'lo_export',
  'pg_terminate_backend',
  'pg_cancel_backend',
  'pg_reload_conf',
  'pg_rotate_logfile',
  'pg_logical_slot_get_changes',
  'pg_logical_slot_get_binary_changes',
  'pg_logical_slot_peek_changes',
  'pg_logical_slot_peek_binary_changes',
  'dblink*',
];

const EFFECT_REASONS: Readonly<Record<string, string>> = {
  copy_program: 'COPY with PROGRAM runs a program on the database server',
  copy_file: 'COPY with a server file reads or writes files on the database server',
};

/**
 * The built-in deny list. Returns why the statement is denied, or undefined.
 * `allowedSettings` holds the normalised setting names that allow rules
 * matching this principal and resource permit; nothing else here can be
 * lifted by a rule.
 */
export function defaultDenial(facts: StatementFacts, allowedSettings: ReadonlySet<string>): string | undefined {
  const functions = Array.isArray(facts.functions) ? facts.functions : [];
  for (const fn of functions) {
    if (DEFAULT_DENIED_FUNCTIONS.some((p) => functionMatches(p, fn))) {
      return `function ${showName(fn)} denied by rule ${DEFAULT_DENY_RULE}`;
    }
  }
  const effects = Array.isArray(facts.effects) ? facts.effects : [];
  for (const effect of UNGRANTABLE_EFFECTS) {
    if (effects.includes(effect)) return `${EFFECT_REASONS[effect] ?? effect}: denied by rule ${DEFAULT_DENY_RULE}`;
  }
  const callsSetConfig = functions.some((fn) => functionName(fn) === 'set_config') || effects.includes('set_config');
  if (effects.includes('dynamic_setting')) return `set_config with a setting name that is not a literal denied by rule ${DEFAULT_DENY_RULE}`;
  const changesSetting = callsSetConfig || facts.kind === 'set' || facts.kind === 'reset';
  if (!changesSetting) return undefined;
  if (facts.setting === undefined || typeof facts.setting.name !== 'string') {
    // Which setting changes decides whether it is a role change; not knowing is refusing.
    const what = callsSetConfig ? 'set_config with a setting name that is not a literal' : `${facts.kind.toUpperCase()} of a setting Sluice cannot name`;
    return `${what} denied by rule ${DEFAULT_DENY_RULE}`;
  }
  const name = normalizeSetting(facts.setting.name);
  if (isRefusedSetting(name) && !allowedSettings.has(name)) {
    const how = facts.kind === 'set' || facts.kind === 'reset' ? facts.kind.toUpperCase() : 'set_config';
    return `${how} of ${showName(name)} denied by rule ${DEFAULT_DENY_RULE}; a policy with effect allow and statements.settings naming it permits it`;
  }
  return undefined;
}
