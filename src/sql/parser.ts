import { loadModule, parseSync, scanSync } from 'libpg-query';
import { SqlParserNotReadyError } from './errors.js';

let ready = false;
let loading: Promise<void> | undefined;

/** Loads the PostgreSQL parser (WASM) once; later calls return the same promise. */
export function initSqlParser(): Promise<void> {
  loading ??= loadModule().then(() => {
    ready = true;
  });
  return loading;
}

export function assertParserReady(): void {
  if (!ready) throw new SqlParserNotReadyError();
}

export interface RawStatement {
  stmt?: Record<string, unknown>;
  stmt_location?: number;
  stmt_len?: number;
}

export function parseRaw(sql: string): { stmts?: RawStatement[] } {
  assertParserReady();
  return parseSync(sql) as unknown as { stmts?: RawStatement[] };
}

export function scanRaw(sql: string) {
  assertParserReady();
  return scanSync(sql).tokens;
}
