import { mkdtempSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { stringify } from 'yaml';
import { loadConfigFile } from '../../src/config/load.js';
import { devIssuerFor } from '../../src/runtime/build-state.js';
import { Gateway } from '../../src/runtime/gateway.js';
import { createLogger } from '../../src/observability/log.js';
import { testPostgres, type TestPostgres } from './pg-env.js';

export interface TestGateway {
  readonly gw: Gateway;
  readonly pg: TestPostgres;
  readonly host: string;
  readonly port: number;
  readonly httpUrl: string;
  readonly dir: string;
  readonly configFile: string;
  /** Everything the gateway logged, for checking that no secret leaked. */
  readonly logs: string[];
  token(subject: string, groups?: string[], opts?: { ttlSeconds?: number; kind?: 'person' | 'machine' }): Promise<string>;
  /** libpq connection string for psql. */
  url(grant: string, resource?: string, sslmode?: string): string;
  /** Rewrites the config file (for reload tests). */
  writeConfig(config: Record<string, unknown>): void;
  stop(): Promise<void>;
}

/** The sluice.yaml tests start from: the test cluster as resource `orders`, the dev issuer, self-signed TLS. */
export function baseConfig(pg: TestPostgres, dir: string): Record<string, unknown> {
  return {
    server: {
      postgres: { listen: '127.0.0.1:0', allow_plaintext: true },
      http: { listen: '127.0.0.1:0' },
      tls: { self_signed: true },
      watch_config: false,
      shutdown_grace: 1,
    },
    store: { data_dir: dir },
    identity: { dev_issuer: { enabled: true } },
    resources: [
      {
        name: 'orders',
        type: 'postgres',
        upstream: { host: pg.host, port: pg.port, database: pg.database, tls: { mode: 'require' } },
        credentials: {
          read: { user: pg.roles.reader.user, password: '${env:SLUICE_TEST_READER_PW}' },
          write: { user: pg.roles.writer.user, password: '${env:SLUICE_TEST_WRITER_PW}' },
          ddl: { user: pg.roles.migrator.user, password: '${env:SLUICE_TEST_MIGRATOR_PW}' },
        },
        redact_parameters: ['bytea'],
      },
    ],
    policies: [
      { name: 'dba', when: { groups: ['dba'] }, resources: ['*'], grants: ['read', 'write', 'ddl'] },
      { name: 'dev-read', when: { groups: ['dev'] }, resources: ['orders'], grants: ['read'] },
      { name: 'no-write-for-interns', effect: 'deny', when: { groups: ['intern'] }, resources: ['*'], grants: ['write', 'ddl'] },
      { name: 'auditors', when: { groups: ['auditor'] }, permissions: ['audit:read', 'sessions:read', 'sessions:terminate'] },
    ],
  };
}

/**
 * A real gateway in this process in front of the test cluster. `mutate`
 * adjusts the base config before start.
 */
export async function startGateway(mutate?: (cfg: Record<string, any>) => void): Promise<TestGateway> {
  const pg = testPostgres();
  process.env.SLUICE_TEST_READER_PW = pg.roles.reader.password;
  process.env.SLUICE_TEST_WRITER_PW = pg.roles.writer.password;
  process.env.SLUICE_TEST_MIGRATOR_PW = pg.roles.migrator.password;
  const dir = mkdtempSync(join(tmpdir(), 'sluice-gw-'));
  chmodSync(dir, 0o755);
  const configFile = join(dir, 'sluice.yaml');
  const cfg = baseConfig(pg, dir);
  mutate?.(cfg);
  const writeConfig = (c: Record<string, unknown>) => writeFileSync(configFile, stringify(c));
  writeConfig(cfg);
  const { config } = loadConfigFile(configFile);
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      logs.push(String(chunk));
      cb();
    },
  });
  const gw = await Gateway.start({ config, configFile, log: createLogger('debug', sink) });
  const dev = devIssuerFor(config, gw.keyring)!;
  const host = '127.0.0.1';
  const port = gw.postgresAddress.port;
  return {
    gw,
    pg,
    host,
    port,
    httpUrl: `http://127.0.0.1:${gw.httpAddress.port}`,
    dir,
    configFile,
    logs,
    token: (subject, groups = [], opts = {}) => dev.mint({ subject, groups, kind: opts.kind, ttlSeconds: opts.ttlSeconds }),
    url: (grant, resource = 'orders', sslmode = 'require') => `postgresql://${grant}@${host}:${port}/${resource}?sslmode=${sslmode}`,
    writeConfig,
    stop: async () => {
      await gw.stop(0);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
