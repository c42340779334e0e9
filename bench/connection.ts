import type pg from 'pg';

export type Transport = 'plain' | 'tls';

/** How a client reaches one target; the password may be a short-lived token. */
export interface ConnParams {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  readonly database: string;
  readonly transport: Transport;
}

/** libpq environment for pgbench and psql, so secrets stay off command lines. */
export function libpqEnv(c: ConnParams): NodeJS.ProcessEnv {
  return {
    ...process.env,
    PGHOST: c.host,
    PGPORT: String(c.port),
    PGUSER: c.user,
    PGPASSWORD: c.password,
    PGDATABASE: c.database,
    PGSSLMODE: c.transport === 'tls' ? 'require' : 'disable',
    PGCONNECT_TIMEOUT: '10',
    PGAPPNAME: 'sluice-bench',
  };
}

/** node-postgres settings; TLS without verification, like sslmode=require. */
export function pgClientConfig(c: ConnParams): pg.ClientConfig {
  return {
    host: c.host,
    port: c.port,
    user: c.user,
    password: c.password,
    database: c.database,
    ssl: c.transport === 'tls' ? { rejectUnauthorized: false } : false,
    connectionTimeoutMillis: 10_000,
  };
}
