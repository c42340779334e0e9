import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Database } from 'better-sqlite3';

/**
 * Online, consistent copy of a SQLite database to `destPath`. The copy is
 * created 0600 in a 0700 directory first: SQLite would create it
 * world-readable, and the audit log holds statement text.
 */
export async function backupSqlite(db: Database, destPath: string): Promise<void> {
  mkdirSync(dirname(destPath), { recursive: true, mode: 0o700 });
  closeSync(openSync(destPath, 'a', 0o600));
  await db.backup(destPath);
}
