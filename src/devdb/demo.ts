import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { clusterUserCanReach, findPostgresBinDir, startLocalCluster } from './cluster.js';
import { startEmbeddedDatabase } from './pglite.js';

export const DEMO_ROLES = { read: 'demo_read', write: 'demo_write', ddl: 'demo_ddl' } as const;
type DemoGrant = keyof typeof DEMO_ROLES;

/** Random passwords for the demo roles, kept as files so the config can reference them with ${file:...}. */
export function ensureDemoSecrets(secretsDir: string): Record<DemoGrant, string> {
  mkdirSync(secretsDir, { recursive: true, mode: 0o700 });
  const out = {} as Record<DemoGrant, string>;
  for (const grant of Object.keys(DEMO_ROLES) as DemoGrant[]) {
    const file = join(secretsDir, `demo-${grant}.password`);
    if (!existsSync(file)) writeFileSync(file, randomBytes(18).toString('base64url'), { mode: 0o600 });
    out[grant] = file;
  }
  return out;
}

export interface DemoDatabase {
  /** "postgres" (local binaries, one role per grant) or "pglite" (embedded, single-user). */
  readonly engine: 'postgres' | 'pglite';
  stop(): Promise<void>;
}

const ROLES_SQL = (pw: (g: DemoGrant) => string) => `
  CREATE ROLE ${DEMO_ROLES.read} LOGIN PASSWORD '${pw('read')}';
  CREATE ROLE ${DEMO_ROLES.write} LOGIN PASSWORD '${pw('write')}';
  CREATE ROLE ${DEMO_ROLES.ddl} LOGIN PASSWORD '${pw('ddl')}';
`;

const SCHEMA_SQL = `
  CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, email text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
  CREATE TABLE orders (id serial PRIMARY KEY, customer_id int NOT NULL REFERENCES customers(id), total numeric(10,2) NOT NULL, status text NOT NULL DEFAULT 'open');
  INSERT INTO customers (name, email) SELECT 'Customer ' || g, 'customer' || g || '@example.com' FROM generate_series(1, 50) g;
  INSERT INTO orders (customer_id, total, status) SELECT 1 + (g % 50), (g * 7 % 500) + 0.99, CASE WHEN g % 3 = 0 THEN 'shipped' ELSE 'open' END FROM generate_series(1, 200) g;
`;

const GRANTS_SQL = `
  GRANT SELECT ON ALL TABLES IN SCHEMA public TO ${DEMO_ROLES.read}, ${DEMO_ROLES.write};
  GRANT INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO ${DEMO_ROLES.write};
  GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO ${DEMO_ROLES.write};
`;

/**
 * The quick start's demo database on `port`: a throwaway local cluster with
 * one role per grant (the database itself enforces least privilege) where
 * PostgreSQL is installed, else an embedded PGlite. Seeded once with a small
 * schema to try statements on.
 */
export async function startDemoDatabase(
  dir: string,
  port: number,
  secretFiles: Record<DemoGrant, string>,
  engine: 'auto' | 'postgres' | 'pglite' = 'auto',
): Promise<DemoDatabase> {
  const pw = (g: DemoGrant) => readFileSync(secretFiles[g], 'utf8').trim().replace(/'/g, "''");
  const seeded = join(dir, 'seeded');
  if (engine === 'postgres' || (engine === 'auto' && findPostgresBinDir() && clusterUserCanReach(dir))) {
    const cluster = await startLocalCluster({ dir, port });
    if (!existsSync(seeded)) {
      await cluster.psql(`${ROLES_SQL(pw)} CREATE DATABASE demo OWNER ${DEMO_ROLES.ddl};`);
      await cluster.psql(`SET ROLE ${DEMO_ROLES.ddl}; ${SCHEMA_SQL} ${GRANTS_SQL}`, 'demo');
      writeFileSync(seeded, new Date().toISOString());
    }
    return { engine: 'postgres', stop: () => cluster.stop() };
  }
  const db = await startEmbeddedDatabase(join(dir, 'pglite'), port);
  if (!existsSync(seeded)) {
    await db.exec(`${ROLES_SQL(pw)} ${SCHEMA_SQL}`);
    writeFileSync(seeded, new Date().toISOString());
  }
  return { engine: 'pglite', stop: () => db.stop() };
}
