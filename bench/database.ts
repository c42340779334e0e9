import { randomBytes } from 'node:crypto';
import { chownSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startLocalCluster, type LocalCluster } from '../src/devdb/cluster.js';
import { generateSelfSigned } from '../src/tls/self-signed.js';
import { isRoot, runCommand } from './processes.js';

export const BENCH_DATABASE = 'bench';
export const BULK_TABLE = 'bench_bulk';

export interface BenchRole {
  readonly user: string;
  readonly password: string;
  /** The role's SCRAM secret as PostgreSQL stores it, for pgbouncer's auth_file. */
  readonly secret: string;
}

export interface BenchDatabase {
  readonly cluster: LocalCluster;
  readonly host: string;
  readonly port: number;
  readonly database: string;
  /** Sluice's `read` and `write` grants use these; direct and pgbouncer clients log in as `read`. */
  readonly roles: { readonly read: BenchRole; readonly write: BenchRole };
  /** One self-signed pair serves PostgreSQL, pgbouncer and Sluice's client legs alike. */
  readonly certFile: string;
  readonly keyFile: string;
  readonly serverVersion: string;
  readonly bulkRows: number;
}

export interface BenchDatabaseOptions {
  readonly dir: string;
  readonly maxConnections: number;
  readonly scale: number;
  /** Rows of the 5-column bulk table; 0 skips creating it. */
  readonly bulkRows: number;
  readonly log: (msg: string) => void;
}

export async function startBenchDatabase(opts: BenchDatabaseOptions): Promise<BenchDatabase> {
  mkdirSync(opts.dir, { recursive: true, mode: 0o755 });
  const tls = await generateSelfSigned();
  const certFile = join(opts.dir, 'tls.crt');
  const keyFile = join(opts.dir, 'tls.key');
  writeFileSync(certFile, tls.cert, { mode: 0o644 });
  writeFileSync(keyFile, tls.key, { mode: 0o600 });
  if (isRoot()) {
    const { uid, gid } = await postgresIds();
    chownSync(certFile, uid, gid);
    chownSync(keyFile, uid, gid);
  }
  opts.log(`starting PostgreSQL (max_connections ${opts.maxConnections})`);
  const cluster = await startLocalCluster({
    dir: join(opts.dir, 'postgres'),
    maxConnections: opts.maxConnections,
    ssl: { certFile, keyFile },
    settings: { shared_buffers: "'256MB'" },
  });
  try {
    const password = randomBytes(18).toString('base64url');
    await cluster.psql(`
      CREATE ROLE bench_read LOGIN PASSWORD '${password}';
      CREATE ROLE bench_write LOGIN PASSWORD '${password}';
      CREATE DATABASE ${BENCH_DATABASE};
    `);
    opts.log(`pgbench -i -s ${opts.scale}`);
    await runCommand(join(cluster.binDir, 'pgbench'), ['-i', '-q', '-s', String(opts.scale), '-h', cluster.socketDir, '-p', String(cluster.port), '-U', 'postgres', BENCH_DATABASE]);
    if (opts.bulkRows > 0) {
      opts.log(`creating ${BULK_TABLE} (${opts.bulkRows} rows, 5 columns)`);
      await cluster.psql(
        `CREATE TABLE ${BULK_TABLE} AS
           SELECT g AS id, md5(g::text) AS name, 'user' || g || '@example.com' AS email,
                  (g % 100000)::numeric(12,2) / 100 AS amount,
                  timestamptz '2024-01-01' + g * interval '1 second' AS created_at
           FROM generate_series(1, ${Math.floor(opts.bulkRows)}) g;
         VACUUM ANALYZE ${BULK_TABLE};`,
        BENCH_DATABASE,
      );
    }
    await cluster.psql(
      `GRANT SELECT ON ALL TABLES IN SCHEMA public TO bench_read;
       GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO bench_write;`,
      BENCH_DATABASE,
    );
    const secrets = new Map(
      (await cluster.psql(`SELECT rolname || '|' || rolpassword FROM pg_authid WHERE rolname IN ('bench_read', 'bench_write')`))
        .trim()
        .split('\n')
        .map((line) => line.split('|') as [string, string]),
    );
    const serverVersion = (await cluster.psql('SHOW server_version')).trim();
    return {
      cluster,
      host: cluster.host,
      port: cluster.port,
      database: BENCH_DATABASE,
      roles: {
        read: { user: 'bench_read', password, secret: secrets.get('bench_read') ?? '' },
        write: { user: 'bench_write', password, secret: secrets.get('bench_write') ?? '' },
      },
      certFile,
      keyFile,
      serverVersion,
      bulkRows: opts.bulkRows,
    };
  } catch (err) {
    await cluster.stop();
    throw err;
  }
}

export async function postgresIds(): Promise<{ uid: number; gid: number }> {
  const uid = Number((await runCommand('id', ['-u', 'postgres'])).stdout.trim());
  const gid = Number((await runCommand('id', ['-g', 'postgres'])).stdout.trim());
  return { uid, gid };
}
