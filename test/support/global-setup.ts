import { mkdtempSync, chmodSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { startLocalCluster } from '../../src/devdb/cluster.js';
import { generateSelfSigned } from '../../src/tls/self-signed.js';
import type { TestPostgres } from './pg-env.js';

/**
 * One real PostgreSQL cluster for the whole run, with TLS and one role per
 * backend authentication method, so tests exercise what production meets.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-test-pg-'));
  chmodSync(dir, 0o755);
  const tls = await generateSelfSigned();
  const certFile = join(dir, 'server.crt');
  const keyFile = join(dir, 'server.key');
  writeFileSync(certFile, tls.cert, { mode: 0o644 });
  writeFileSync(keyFile, tls.key, { mode: 0o600 });
  const { execFileSync } = await import('node:child_process');
  if (process.getuid?.() === 0) execFileSync('chown', ['postgres', certFile, keyFile]);

  const cluster = await startLocalCluster({
    dir: join(dir, 'cluster'),
    maxConnections: 300,
    ssl: { certFile, keyFile },
    hba: [
      'hostssl all sluice_tls 127.0.0.1/32 scram-sha-256',
      'host all sluice_tls 127.0.0.1/32 reject',
      'host all sluice_md5 127.0.0.1/32 md5',
      'host all sluice_plain 127.0.0.1/32 password',
      'host all all 127.0.0.1/32 scram-sha-256',
    ],
  });
  const env: TestPostgres = {
    host: cluster.host,
    port: cluster.port,
    socketDir: cluster.socketDir,
    binDir: cluster.binDir,
    caFile: certFile,
    superuser: { user: 'postgres', password: 'postgres-secret' },
    roles: {
      reader: { user: 'sluice_reader', password: 'reader-secret' },
      writer: { user: 'sluice_writer', password: 'writer-secret' },
      migrator: { user: 'sluice_migrator', password: 'migrator-secret' },
      md5: { user: 'sluice_md5', password: 'md5-secret' },
      plain: { user: 'sluice_plain', password: 'plain-secret' },
      tls: { user: 'sluice_tls', password: 'tls-secret' },
    },
    database: 'orders',
  };
  await cluster.psql(`
    ALTER ROLE postgres PASSWORD 'postgres-secret';
    CREATE ROLE sluice_reader LOGIN PASSWORD 'reader-secret';
    CREATE ROLE sluice_writer LOGIN PASSWORD 'writer-secret';
    CREATE ROLE sluice_migrator LOGIN PASSWORD 'migrator-secret';
    CREATE ROLE sluice_plain LOGIN PASSWORD 'plain-secret';
    CREATE ROLE sluice_tls LOGIN PASSWORD 'tls-secret';
    SET password_encryption = 'md5';
    CREATE ROLE sluice_md5 LOGIN PASSWORD 'md5-secret';
    CREATE DATABASE orders OWNER sluice_migrator;
  `);
  await cluster.psql(
    `
    SET ROLE sluice_migrator;
    CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, email text);
    INSERT INTO customers (name, email) SELECT 'customer ' || g, 'c' || g || '@example.com' FROM generate_series(1, 100) g;
    GRANT SELECT ON ALL TABLES IN SCHEMA public TO sluice_reader, sluice_md5, sluice_plain, sluice_tls;
    GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO sluice_writer;
    GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO sluice_writer;
    GRANT CREATE ON SCHEMA public TO sluice_writer;
    `,
    'orders',
  );
  project.provide('pg', env);
  return async () => {
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  };
}
