import type Database from 'better-sqlite3';
import { StoreError } from '../errors.js';
import { describeError } from './describe-error.js';
import type { Migration } from './migrations.js';

export interface MigrationResult {
  /** Schema version before this run (0 for a new database). */
  readonly from: number;
  readonly to: number;
  readonly applied: readonly string[];
}

/**
 * Brings the database up to the last version in `list`. Each migration runs
 * in its own IMMEDIATE transaction and re-checks whether it is still needed
 * inside it, so two processes opening the same new file do not both apply it.
 * `label` names the database in errors (its path).
 */
export function applyMigrations(db: Database.Database, list: readonly Migration[], label: string): MigrationResult {
  checkList(list);
  db.exec(
    'CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)',
  );
  const currentVersion = db.prepare<[], number | null>('SELECT max(version) FROM schema_migrations').pluck();
  const isApplied = db.prepare<[number], number>('SELECT 1 FROM schema_migrations WHERE version = ?').pluck();
  const record = db.prepare<[number, string, string]>(
    'INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)',
  );

  const from = currentVersion.get() ?? 0;
  const latest = list.length > 0 ? list[list.length - 1].version : 0;
  if (from > latest) {
    throw new StoreError(
      'store_schema_newer',
      `the store at ${label} has schema version ${from}, but this version of Sluice only knows versions up to ${latest}. ` +
        'It was written by a newer Sluice: run that version, or restore a backup taken before the upgrade.',
    );
  }

  const applied: string[] = [];
  for (const m of list) {
    if (m.version <= from) continue;
    const run = db.transaction(() => {
      if (isApplied.get(m.version) !== undefined) return false;
      db.exec(m.up);
      record.run(m.version, m.name, new Date().toISOString());
      return true;
    });
    try {
      if (run.immediate()) applied.push(m.name);
    } catch (err) {
      throw new StoreError(
        'store_migration_failed',
        `migration ${m.version} (${m.name}) failed on the store at ${label} (${describeError(err)}); it was rolled back ` +
          `and the store is at schema version ${currentVersion.get() ?? 0}. Check disk space and permissions, then start again.`,
        { cause: err },
      );
    }
  }
  return { from, to: currentVersion.get() ?? 0, applied };
}

function checkList(list: readonly Migration[]): void {
  let previous = 0;
  for (const m of list) {
    if (!Number.isInteger(m.version) || m.version <= previous) {
      throw new StoreError(
        'store_migrations_invalid',
        `migration versions must be increasing positive integers; ${m.version} (${m.name}) follows ${previous}. This is a bug in Sluice: please report it.`,
      );
    }
    previous = m.version;
  }
}
