import { inject } from 'vitest';

export interface TestRole {
  readonly user: string;
  readonly password: string;
}

/** The real PostgreSQL cluster global-setup started for this run. */
export interface TestPostgres {
  readonly host: string;
  readonly port: number;
  readonly socketDir: string;
  readonly binDir: string;
  /** The server's self-signed certificate, usable as CA for verify-full. */
  readonly caFile: string;
  readonly superuser: TestRole;
  readonly roles: Record<'reader' | 'writer' | 'migrator' | 'md5' | 'plain' | 'tls', TestRole>;
  /** A database with a `customers` table of 100 rows. */
  readonly database: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    pg: TestPostgres;
  }
}

export function testPostgres(): TestPostgres {
  return inject('pg');
}
