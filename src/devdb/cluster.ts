import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync, appendFileSync, chownSync, statSync } from 'node:fs';
import { join, dirname, resolve } from 'node:path';
import { promisify } from 'node:util';
import { SluiceError } from '../errors.js';
import { freePort } from './free-port.js';

const run = promisify(execFile);

/**
 * A throwaway PostgreSQL cluster from the local PostgreSQL binaries, for the
 * quick start, the tests and the benchmarks. initdb and postgres refuse to
 * run as root, so as root the cluster runs as the `postgres` user that
 * Debian's package creates.
 */
export interface LocalCluster {
  readonly host: string;
  readonly port: number;
  readonly dataDir: string;
  /** Unix socket directory; local connections there are trusted (setup only). */
  readonly socketDir: string;
  readonly binDir: string;
  psql(sql: string, database?: string): Promise<string>;
  stop(): Promise<void>;
}

export interface ClusterOptions {
  /** Directory that will hold pgdata, the socket and the log; created if missing. */
  readonly dir: string;
  readonly port?: number;
  readonly maxConnections?: number;
  /** PEM files to enable TLS on the server. */
  readonly ssl?: { readonly certFile: string; readonly keyFile: string };
  /** Extra postgresql.conf lines. */
  readonly settings?: Record<string, string | number>;
  /** pg_hba.conf host lines; default: scram-sha-256 for every user from 127.0.0.1. */
  readonly hba?: readonly string[];
}

export function findPostgresBinDir(): string | undefined {
  const env = process.env.SLUICE_PG_BINDIR;
  if (env && existsSync(join(env, 'initdb'))) return env;
  const base = '/usr/lib/postgresql';
  if (!existsSync(base)) return undefined;
  const versions = readdirSync(base)
    .filter((v) => existsSync(join(base, v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return versions.length ? join(base, versions[0], 'bin') : undefined;
}

function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

async function postgresIds(): Promise<{ uid: number; gid: number }> {
  const uid = Number((await run('id', ['-u', 'postgres'])).stdout.trim());
  const gid = Number((await run('id', ['-g', 'postgres'])).stdout.trim());
  return { uid, gid };
}

function asClusterUser(cmd: string, args: string[]): [string, string[]] {
  return isRoot() ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args];
}

async function exec(cmd: string, args: string[], timeoutMs = 120_000): Promise<string> {
  const [c, a] = asClusterUser(cmd, args);
  try {
    return (await run(c, a, { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 })).stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new SluiceError('devdb_command_failed', `${cmd} failed: ${(e.stderr || e.message).trim()}`);
  }
}

/** Statements go through stdin so that each runs in its own transaction, as in a psql script. */
function execWithInput(cmd: string, args: string[], input: string): Promise<string> {
  const [c, a] = asClusterUser(cmd, args);
  return new Promise((resolveOut, reject) => {
    const child = spawn(c, a, { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolveOut(out) : reject(new SluiceError('devdb_command_failed', `${cmd} failed: ${err.trim() || `exit ${code}`}`)),
    );
    child.stdin.end(input);
  });
}

/** The first ancestor of `dir` the cluster user cannot traverse (as root the cluster runs as `postgres`). */
function unreachableAncestor(dir: string): string | undefined {
  if (!isRoot()) return undefined;
  let d = dirname(resolve(dir));
  while (d !== dirname(d)) {
    if ((statSync(d).mode & 0o001) === 0) return d;
    d = dirname(d);
  }
  return undefined;
}

export function clusterUserCanReach(dir: string): boolean {
  return unreachableAncestor(dir) === undefined;
}

function checkTraversable(dir: string): void {
  const d = unreachableAncestor(dir);
  if (d) {
    throw new SluiceError('devdb_dir_unreachable', `${d} is not traversable by the postgres user; use a data directory under a world-traversable path or chmod o+x ${d}`);
  }
}

export async function startLocalCluster(opts: ClusterOptions): Promise<LocalCluster> {
  const binDir = findPostgresBinDir();
  if (!binDir) {
    throw new SluiceError('devdb_no_postgres', 'no local PostgreSQL binaries found (install the postgresql package, or set SLUICE_PG_BINDIR)');
  }
  const dir = resolve(opts.dir);
  mkdirSync(dir, { recursive: true });
  checkTraversable(dir);
  const dataDir = join(dir, 'pgdata');
  const socketDir = join(dir, 'socket');
  mkdirSync(socketDir, { recursive: true });
  if (isRoot()) {
    const { uid, gid } = await postgresIds();
    chownSync(dir, uid, gid);
    chownSync(socketDir, uid, gid);
  }
  const port = opts.port ?? (await freePort());
  if (!existsSync(join(dataDir, 'PG_VERSION'))) {
    await exec(join(binDir, 'initdb'), ['-D', dataDir, '-U', 'postgres', '-E', 'UTF8', '--locale=C', '--auth-local=trust', '--auth-host=scram-sha-256', '-N']);
    const hba = ['local all all trust', ...(opts.hba ?? ['host all all 127.0.0.1/32 scram-sha-256'])];
    writeFileSync(join(dataDir, 'pg_hba.conf'), hba.join('\n') + '\n');
    const settings: Record<string, string | number> = {
      listen_addresses: "'127.0.0.1'",
      unix_socket_directories: `'${socketDir}'`,
      max_connections: opts.maxConnections ?? 100,
      fsync: 'off',
      synchronous_commit: 'off',
      full_page_writes: 'off',
      password_encryption: "'scram-sha-256'",
      ...opts.settings,
    };
    if (opts.ssl) {
      settings.ssl = 'on';
      settings.ssl_cert_file = `'${opts.ssl.certFile}'`;
      settings.ssl_key_file = `'${opts.ssl.keyFile}'`;
    }
    appendFileSync(join(dataDir, 'postgresql.conf'), Object.entries(settings).map(([k, v]) => `${k} = ${v}`).join('\n') + '\n');
    if (isRoot()) {
      const { uid, gid } = await postgresIds();
      chownSync(join(dataDir, 'pg_hba.conf'), uid, gid);
      chownSync(join(dataDir, 'postgresql.conf'), uid, gid);
    }
  }
  await exec(join(binDir, 'pg_ctl'), ['-D', dataDir, '-l', join(dir, 'postgres.log'), '-o', `-p ${port}`, '-w', '-t', '60', 'start']);

  const psql = (sql: string, database = 'postgres') =>
    execWithInput(join(binDir, 'psql'), ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-h', socketDir, '-p', String(port), '-U', 'postgres', '-d', database, '-f', '-'], sql);

  return {
    host: '127.0.0.1',
    port,
    dataDir,
    socketDir,
    binDir,
    psql,
    stop: async () => {
      await exec(join(binDir, 'pg_ctl'), ['-D', dataDir, '-m', 'fast', '-w', 'stop']).catch(() => undefined);
    },
  };
}
