import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { StoreError } from '../errors.js';
import { describeError } from './describe-error.js';
import { applyMigrations } from './migrate.js';
import { migrations } from './migrations.js';

export type SqliteDatabase = Database.Database;

export interface SqliteOptions {
  /**
   * WAL mode either way. `normal`: a commit survives a crash of the process
   * (kill -9); the last commits can be lost on power loss or an OS crash.
   * `full`: every commit is fsynced before it returns, so it also survives
   * power loss.
   */
  readonly synchronous: 'normal' | 'full';
  /** How long a write waits for another connection's lock; it blocks the event loop meanwhile. Default 5000. */
  readonly busyTimeoutMs?: number;
}

const DEFAULT_BUSY_TIMEOUT_MS = 5000;

/**
 * Opens (creating if needed) the embedded store and brings its schema up to
 * date. The directory is created 0700 and the file 0600 because the audit log
 * holds statement text. Throws StoreError when the file cannot be opened, is
 * not a database, cannot use WAL, or was written by a newer Sluice.
 */
export function openSqlite(path: string, opts: SqliteOptions): SqliteDatabase {
  const inMemory = path === ':memory:' || path === '';
  let db: SqliteDatabase | undefined;
  try {
    if (!inMemory) {
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      // SQLite gives the -wal and -shm files the mode of the database file.
      closeSync(openSync(path, 'a', 0o600));
    }
    db = new Database(path, { timeout: opts.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS });
    const mode = db.pragma('journal_mode = WAL', { simple: true });
    if (!inMemory && mode !== 'wal') {
      throw new Error(`journal_mode is ${String(mode)}, WAL is required (is the file on a network filesystem?)`);
    }
    db.pragma(`synchronous = ${opts.synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
    db.pragma('foreign_keys = ON');
    applyMigrations(db, migrations, path);
    return db;
  } catch (err) {
    db?.close();
    if (err instanceof StoreError) throw err;
    throw new StoreError(
      'store_open_failed',
      `could not open the store at ${path} (${describeError(err)}). Check that the path is a Sluice store and that its directory is writable.`,
      { cause: err },
    );
  }
}
