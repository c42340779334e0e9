import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import type { Command } from 'commander';
import { loadConfigFile } from '../../config/load.js';
import { SluiceError } from '../../errors.js';
import { backupSqlite } from '../../store/backup.js';
import { describeError } from '../../store/describe-error.js';
import { findConfigFile } from '../config-file.js';

export function storeCommands(program: Command): void {
  const store = program.command('store').description('the embedded store');
  store
    .command('backup <dest>')
    .description('write a consistent copy of the store, also while Sluice runs')
    .option('--config <file>', 'sluice.yaml')
    .action(async (dest: string, o: { config?: string }) => {
      const { config } = loadConfigFile(findConfigFile(o.config));
      const path = config.store.path ?? join(config.store.data_dir, 'sluice.db');
      const target = resolve(dest);
      let db: Database.Database;
      try {
        db = new Database(path, { readonly: true, fileMustExist: true });
      } catch (err) {
        throw new SluiceError('store_unreadable', `cannot open the store ${path}: ${(err as Error).message}`);
      }
      try {
        await backupSqlite(db, target);
      } catch (err) {
        throw new SluiceError('store_backup_failed', `cannot write the backup to ${target} (${describeError(err)}); check that its directory is writable`);
      } finally {
        db.close();
      }
      process.stdout.write(`backup of ${path} written to ${target}\n`);
    });
}
