import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StoreError } from '../../src/errors.js';
import { applyMigrations } from '../../src/store/migrate.js';
import { migrations, type Migration } from '../../src/store/migrations.js';
import { openSqlite } from '../../src/store/sqlite.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'sluice-store-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function appliedVersions(db: Database.Database): { version: number; name: string; applied_at: string }[] {
  return db.prepare('SELECT version, name, applied_at FROM schema_migrations ORDER BY version').all() as never;
}

describe('openSqlite', () => {
  it('creates a private directory and file, in WAL mode with the configured pragmas', () => {
    const path = join(dir, 'nested', 'data', 'sluice.db');
    const db = openSqlite(path, { synchronous: 'full', busyTimeoutMs: 1234 });
    try {
      expect(statSync(join(dir, 'nested')).mode & 0o777).toBe(0o700);
      expect(statSync(join(dir, 'nested', 'data')).mode & 0o777).toBe(0o700);
      expect(statSync(path).mode & 0o777).toBe(0o600);
      expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
      expect(db.pragma('synchronous', { simple: true })).toBe(2);
      expect(db.pragma('foreign_keys', { simple: true })).toBe(1);
      expect(db.pragma('busy_timeout', { simple: true })).toBe(1234);
    } finally {
      db.close();
    }
    const normal = openSqlite(path, { synchronous: 'normal' });
    expect(normal.pragma('synchronous', { simple: true })).toBe(1);
    expect(normal.pragma('busy_timeout', { simple: true })).toBe(5000);
    normal.close();
  });

  it('applies every migration once and records it', () => {
    const path = join(dir, 'sluice.db');
    const first = openSqlite(path, { synchronous: 'normal' });
    const recorded = appliedVersions(first);
    first.close();
    expect(recorded.map((r) => [r.version, r.name])).toEqual(migrations.map((m) => [m.version, m.name]));

    const second = openSqlite(path, { synchronous: 'normal' });
    expect(appliedVersions(second)).toEqual(recorded);
    const tables = second.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").pluck().all();
    second.close();
    expect(tables).toEqual(expect.arrayContaining(['audit_events', 'schema_migrations']));
  });

  it('refuses a database written by a newer Sluice', () => {
    const path = join(dir, 'sluice.db');
    openSqlite(path, { synchronous: 'normal' }).close();
    const raw = new Database(path);
    raw.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(999, 'future', 'x');
    raw.close();

    const attempt = () => openSqlite(path, { synchronous: 'normal' });
    expect(attempt).toThrow(StoreError);
    expect(attempt).toThrow(expect.objectContaining({ code: 'store_schema_newer' }));
    expect(attempt).toThrow(/schema version 999.*only knows versions up to 3.*restore a backup/s);
    expect(attempt).toThrow(path);
  });

  it('refuses a file that is not a database', () => {
    const path = join(dir, 'not-a.db');
    writeFileSync(path, 'this is not a database, it is a text file that is long enough to have a header'.repeat(20));
    expect(() => openSqlite(path, { synchronous: 'normal' })).toThrow(
      expect.objectContaining({ code: 'store_open_failed', message: expect.stringContaining(path) }),
    );
  });
});

describe('applyMigrations', () => {
  const list: Migration[] = [
    { version: 1, name: 'one', up: 'CREATE TABLE one (x INTEGER);' },
    { version: 2, name: 'two', up: 'CREATE TABLE two (x INTEGER); INSERT INTO missing_table VALUES (1);' },
  ];

  it('runs each migration in its own transaction and stops at the first failure', () => {
    const db = new Database(':memory:');
    expect(() => applyMigrations(db, list, 'memory')).toThrow(
      expect.objectContaining({ code: 'store_migration_failed', message: expect.stringMatching(/migration 2 \(two\).*schema version 1/) }),
    );
    const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").pluck().all();
    expect(tables).toEqual(['one', 'schema_migrations']);
    expect(appliedVersions(db).map((r) => r.version)).toEqual([1]);

    const fixed = [list[0], { ...list[1], up: 'CREATE TABLE two (x INTEGER);' }];
    expect(applyMigrations(db, fixed, 'memory')).toEqual({ from: 1, to: 2, applied: ['two'] });
    expect(applyMigrations(db, fixed, 'memory')).toEqual({ from: 2, to: 2, applied: [] });
    db.close();
  });

  it('rejects a list whose versions do not increase', () => {
    const db = new Database(':memory:');
    const bad = [list[1], list[0]];
    expect(() => applyMigrations(db, bad, 'memory')).toThrow(expect.objectContaining({ code: 'store_migrations_invalid' }));
    expect(db.prepare("SELECT count(*) FROM sqlite_master WHERE name = 'one'").pluck().get()).toBe(0);
    db.close();
  });
});
