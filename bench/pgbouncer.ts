import { spawn, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from '../src/devdb/free-port.js';
import type { BenchDatabase } from './database.js';
import { postgresIds } from './database.js';
import { BenchError } from './errors.js';
import { asPostgresUser, hasExited, isRoot, runCommand, stopChild, tail, waitForPort } from './processes.js';

const CANDIDATES = ['/usr/sbin/pgbouncer', '/usr/bin/pgbouncer', '/usr/local/bin/pgbouncer'];

function findPgbouncer(): string | undefined {
  return CANDIDATES.find((p) => existsSync(p));
}

/**
 * Debian's pgbouncer, installed with apt-get when absent. Fails loudly: a
 * benchmark without its pgbouncer baseline is not the benchmark.
 */
export async function ensurePgbouncer(log: (msg: string) => void): Promise<string> {
  const found = findPgbouncer();
  if (found) return found;
  if (!isRoot()) {
    throw new BenchError('bench_no_pgbouncer', 'pgbouncer is not installed; install it (apt-get install pgbouncer) or run the benchmark as root so it can');
  }
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  log('installing pgbouncer with apt-get');
  try {
    await runCommand('apt-get', ['install', '-y', '-q', 'pgbouncer'], { env, timeoutMs: 300_000 });
  } catch {
    await runCommand('apt-get', ['update', '-q'], { env, timeoutMs: 300_000 });
    await runCommand('apt-get', ['install', '-y', '-q', 'pgbouncer'], { env, timeoutMs: 300_000 });
  }
  const installed = findPgbouncer();
  if (!installed) throw new BenchError('bench_no_pgbouncer', 'apt-get install pgbouncer succeeded but no pgbouncer binary was found');
  return installed;
}

export async function pgbouncerVersion(bin: string): Promise<string> {
  const out = (await runCommand(bin, ['--version'])).stdout;
  return out.split('\n')[0].replace(/^PgBouncer\s+/i, '').trim();
}

export interface Pgbouncer {
  readonly port: number;
  pid(): number;
  readonly version: string;
  /** A fresh process on the same port, which also drops its pooled server connections. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export interface PgbouncerOptions {
  readonly bin: string;
  readonly dir: string;
  readonly db: BenchDatabase;
  /** Session pooling pins one server connection per client, so this bounds both. */
  readonly maxClients: number;
}

/** pgbouncer in session mode; clients choose TLS or plain, the server leg is plain like Sluice's. */
export async function startPgbouncer(opts: PgbouncerOptions): Promise<Pgbouncer> {
  mkdirSync(opts.dir, { recursive: true });
  const port = await freePort();
  const { db } = opts;
  const authFile = join(opts.dir, 'userlist.txt');
  const iniFile = join(opts.dir, 'pgbouncer.ini');
  const logFile = join(opts.dir, 'pgbouncer.log');
  writeFileSync(authFile, [db.roles.read, db.roles.write].map((r) => `"${r.user}" "${r.secret}"`).join('\n') + '\n', { mode: 0o600 });
  writeFileSync(
    iniFile,
    `[databases]
${db.database} = host=${db.host} port=${db.port} dbname=${db.database}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = ${port}
unix_socket_dir =
auth_type = scram-sha-256
auth_file = ${authFile}
pool_mode = session
max_client_conn = ${opts.maxClients}
default_pool_size = ${opts.maxClients}
client_tls_sslmode = allow
client_tls_cert_file = ${db.certFile}
client_tls_key_file = ${db.keyFile}
server_tls_sslmode = disable
ignore_startup_parameters = extra_float_digits
logfile = ${logFile}
log_connections = 0
log_disconnections = 0
`,
    { mode: 0o644 },
  );
  if (isRoot()) {
    const { uid, gid } = await postgresIds();
    for (const f of [opts.dir, authFile, iniFile]) chownSync(f, uid, gid);
  }
  const launch = async (): Promise<ChildProcess> => {
    const [cmd, args] = asPostgresUser(opts.bin, [iniFile]);
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    try {
      await waitForPort('127.0.0.1', port, { timeoutMs: 15_000, alive: () => !hasExited(child), what: 'pgbouncer' });
    } catch (err) {
      child.kill('SIGKILL');
      throw new BenchError('bench_pgbouncer_failed', `${(err as Error).message}: ${tail(stderr, 5)}`);
    }
    return child;
  };
  let child = await launch();
  return {
    port,
    pid: () => child.pid as number,
    version: await pgbouncerVersion(opts.bin),
    restart: async () => {
      await stopChild(child);
      child = await launch();
    },
    stop: () => stopChild(child),
  };
}
