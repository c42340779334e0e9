import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Option, type Command } from 'commander';
import { stringify } from 'yaml';
import { loadConfigFile } from '../../config/load.js';
import { SluiceError } from '../../errors.js';
import { ensureDemoSecrets, startDemoDatabase, DEMO_ROLES } from '../../devdb/demo.js';
import { freePort } from '../../devdb/free-port.js';
import { devIssuerFor } from '../../runtime/build-state.js';
import { Gateway } from '../../runtime/gateway.js';
import { createLogger } from '../../observability/log.js';
import { runUntilSignalled } from './start.js';

interface QuickstartOptions {
  dataDir: string;
  port: string;
  httpPort: string;
  demoDb: 'auto' | 'postgres' | 'pglite';
}

/** The quick start's sluice.yaml: every embedded default, a demo resource and a demo identity. */
export function quickstartConfig(dataDir: string, pgPort: number, httpPort: number, demoPort: number, secrets: Record<string, string>): unknown {
  return {
    server: {
      postgres: { listen: `127.0.0.1:${pgPort}` },
      http: { listen: `127.0.0.1:${httpPort}` },
      tls: { self_signed: true },
    },
    store: { data_dir: dataDir },
    identity: { dev_issuer: { enabled: true, token_ttl: '8h' } },
    resources: [
      {
        name: 'demo',
        type: 'postgres',
        upstream: { host: '127.0.0.1', port: demoPort, database: 'demo', tls: { mode: 'disable' } },
        credentials: Object.fromEntries(
          (Object.keys(DEMO_ROLES) as (keyof typeof DEMO_ROLES)[]).map((g) => [g, { user: DEMO_ROLES[g], password: `\${file:${secrets[g]}}` }]),
        ),
      },
    ],
    policies: [
      { name: 'demo-team', when: { groups: ['demo'] }, resources: ['demo'], grants: ['read', 'write', 'ddl'], max_session_duration: '8h' },
      { name: 'demo-team-api', when: { groups: ['demo'] }, permissions: ['audit:read', 'sessions:read', 'sessions:terminate'] },
      // Shows just-in-time approval: a DROP waits in psql until someone in demo-leads approves it.
      {
        name: 'demo-hold-drops',
        when: { groups: ['demo'] },
        resources: ['demo'],
        approval: { statements: { kinds: ['ddl.drop', 'truncate'] }, approvers: [{ groups: ['demo-leads'] }], request_ttl: '10m' },
      },
    ],
  };
}

export function quickstartCommand(program: Command): void {
  program
    .command('quickstart')
    .description('run Sluice on embedded defaults with a demo database and a demo identity')
    .option('--data-dir <dir>', 'where the store, keys, TLS certificate and demo database live', 'sluice-data')
    .option('--port <port>', 'PostgreSQL listener port', '6432')
    .option('--http-port <port>', 'HTTP API port', '8080')
    .addOption(
      new Option('--demo-db <engine>', 'demo database: local PostgreSQL binaries, embedded PGlite, or auto (PostgreSQL where installed)')
        .choices(['auto', 'postgres', 'pglite'])
        .default('auto'),
    )
    .action(async (o: QuickstartOptions) => {
      const dataDir = resolve(o.dataDir);
      mkdirSync(dataDir, { recursive: true });
      // The demo cluster runs as the postgres user when Sluice runs as root; it must reach its directory.
      chmodSync(dataDir, 0o755);
      const configFile = join(dataDir, 'sluice.yaml');
      const secrets = ensureDemoSecrets(join(dataDir, 'secrets'));
      if (!existsSync(configFile)) {
        const demoPort = await freePort();
        const yaml = stringify(quickstartConfig('.', Number(o.port), Number(o.httpPort), demoPort, secrets));
        writeFileSync(configFile, `# Written by "sluice quickstart": embedded defaults, a demo database, the development issuer.\n${yaml}`);
      }
      const { config } = loadConfigFile(configFile);
      const demo = config.resources.find((r) => r.name === 'demo');
      if (!demo) throw new SluiceError('quickstart_config', `${configFile} has no "demo" resource; delete the file to regenerate it`);
      const demoDb = await startDemoDatabase(join(dataDir, 'demo-db'), demo.upstream.port, secrets, o.demoDb);
      let gw: Gateway;
      try {
        gw = await Gateway.start({ config, configFile, log: createLogger('error', process.stderr) });
      } catch (err) {
        await demoDb.stop();
        throw err;
      }
      const dev = devIssuerFor(config, gw.keyring)!;
      const token = await dev.mint({ subject: 'demo', groups: ['demo'] });
      const pg = gw.postgresAddress;
      const rel = o.dataDir === 'sluice-data' ? '' : ` --config ${configFile}`;
      process.stdout.write(
        [
          '',
          `Sluice is running on embedded defaults (SQLite store, self-signed TLS, development issuer, demo database on ${demoDb.engine === 'postgres' ? 'local PostgreSQL' : 'embedded PGlite: single-user, so the database does not enforce the grants'}).`,
          '',
          'Connect as the demo identity (token valid 8 hours):',
          `  export PGPASSWORD='${token}'`,
          `  psql "postgresql://read@${pg.host}:${pg.port}/demo?sslmode=require"`,
          '',
          'The user picks the grant: read, write or ddl. The database picks the resource.',
          `See what you ran:   node bin/sluice.js audit tail${rel}`,
          `Another token:      node bin/sluice.js token --subject alice --groups demo${rel}`,
          `Live sessions:      node bin/sluice.js sessions list${rel}`,
          `A DROP or TRUNCATE waits for approval; approve it from another terminal:`,
          `                    node bin/sluice.js approvals list --as lead --as-groups demo-leads${rel}`,
          `                    node bin/sluice.js approvals approve <id> --reason "ok" --as lead --as-groups demo-leads${rel}`,
          'Stop with Ctrl-C.',
          '',
        ].join('\n'),
      );
      await runUntilSignalled(gw, () => demoDb.stop());
    });
}
