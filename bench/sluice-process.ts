import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { stringify } from 'yaml';
import type { ConnParams, Transport } from './connection.js';
import { pgClientConfig } from './connection.js';
import { freePort } from '../src/devdb/free-port.js';
import { BenchError } from './errors.js';
import { collectGarbage } from './inspector.js';
import { hasExited, readRssBytes, runCommand, stopChild, tail, waitForPort } from './processes.js';
import { PASSWORD_ENV } from './sluice-configs.js';

/** bin/sluice.js runs dist/, so the gateway must be compiled first. */
export async function buildSluice(root: string): Promise<void> {
  await runCommand('npm', ['run', 'build', '--silent'], { cwd: root, timeoutMs: 300_000 });
}

export interface SluiceInstance {
  pid(): number;
  readonly postgresPort: number;
  readonly httpPort: number;
  readonly configFile: string;
  conn(transport: Transport): ConnParams;
  rssBytes(): number;
  /**
   * V8 heap in use right after a full garbage collection, from the
   * Prometheus endpoint; undefined unless the process was restarted with
   * `inspect` (the collection goes through the inspector) or when an
   * endpoint does not answer.
   */
  heapUsedBytes(): Promise<number | undefined>;
  /** A fresh gateway process on the same ports and data directory; the token stays valid. */
  restart(opts?: { inspect?: boolean }): Promise<void>;
  stop(): Promise<void>;
}

export interface StartSluiceOptions {
  readonly root: string;
  readonly dir: string;
  readonly config: Record<string, unknown>;
  readonly postgresPort: number;
  readonly httpPort: number;
  readonly backendPassword: string;
  readonly database: string;
  /** Write a V8 CPU profile of the gateway here when it stops (node --cpu-prof). */
  readonly cpuProfDir?: string;
}

/**
 * Starts `sluice start` on a bench configuration, takes a dev token, and
 * proves one session works end to end before any measurement relies on it.
 */
export async function startSluice(opts: StartSluiceOptions): Promise<SluiceInstance> {
  mkdirSync(opts.dir, { recursive: true });
  const configFile = join(opts.dir, 'sluice.yaml');
  const logFile = join(opts.dir, 'sluice.log');
  writeFileSync(configFile, stringify(opts.config));
  const env = { ...process.env, [PASSWORD_ENV]: opts.backendPassword };
  const bin = join(opts.root, 'bin', 'sluice.js');
  const prof = opts.cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${opts.cpuProfDir}`] : [];
  const logTail = () => {
    try {
      return tail(readFileSync(logFile, 'utf8'), 5);
    } catch {
      return '';
    }
  };
  let inspectPort: number | undefined;
  const launch = async (): Promise<ChildProcess> => {
    // Logs go straight to a file: piping them through the harness would
    // spend CPU that pgbench and the gateway compete for.
    const logFd = openSync(logFile, 'a');
    let child: ChildProcess;
    try {
      const inspect = inspectPort ? [`--inspect=127.0.0.1:${inspectPort}`] : [];
      child = spawn(process.execPath, [...prof, ...inspect, bin, 'start', '--config', configFile], { cwd: opts.dir, env, stdio: ['ignore', logFd, logFd] });
    } finally {
      closeSync(logFd);
    }
    try {
      await waitForPort('127.0.0.1', opts.postgresPort, { timeoutMs: 30_000, alive: () => !hasExited(child), what: 'sluice start' });
    } catch (err) {
      await stopChild(child);
      throw err;
    }
    return child;
  };
  const unavailable = (err: unknown) => {
    const log = logTail();
    return new BenchError('bench_sluice_unavailable', `${(err as Error).message}${log ? `; log: ${log}` : ''}`, { cause: err });
  };
  let child: ChildProcess;
  try {
    child = await launch();
  } catch (err) {
    throw unavailable(err);
  }
  try {
    const token = await devToken(bin, configFile, env);
    const instance: SluiceInstance = {
      pid: () => child.pid as number,
      postgresPort: opts.postgresPort,
      httpPort: opts.httpPort,
      configFile,
      conn: (transport) => ({ host: '127.0.0.1', port: opts.postgresPort, user: 'read', password: token, database: opts.database, transport }),
      rssBytes: () => readRssBytes(child.pid as number),
      heapUsedBytes: async () => {
        if (!inspectPort) return undefined;
        try {
          await collectGarbage(inspectPort);
        } catch {
          return undefined;
        }
        return heapUsed(opts.httpPort);
      },
      restart: async (o) => {
        await stopChild(child);
        inspectPort = o?.inspect ? await freePort() : undefined;
        child = await launch();
      },
      stop: () => stopChild(child),
    };
    for (const transport of ['plain', 'tls'] as const) await checkSession(instance.conn(transport));
    return instance;
  } catch (err) {
    await stopChild(child);
    throw unavailable(err);
  }
}

async function devToken(bin: string, configFile: string, env: NodeJS.ProcessEnv): Promise<string> {
  const { stdout } = await runCommand(process.execPath, [bin, 'token', '--config', configFile, '--subject', 'bench', '--groups', 'bench'], { env, timeoutMs: 30_000 });
  const token = stdout
    .split('\n')
    .map((l) => l.trim())
    .find((l) => /^[\w-]+\.[\w-]+\.[\w-]+$/.test(l));
  if (!token) throw new BenchError('bench_no_token', 'sluice token printed no JWT on stdout');
  return token;
}

async function checkSession(conn: ConnParams): Promise<void> {
  const client = new pg.Client(pgClientConfig(conn));
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('SELECT 1');
  } catch (err) {
    throw new BenchError('bench_sluice_session_failed', `a ${conn.transport} session through Sluice failed: ${(err as Error).message}`);
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function heapUsed(httpPort: number): Promise<number | undefined> {
  try {
    const res = await fetch(`http://127.0.0.1:${httpPort}/metrics`, { signal: AbortSignal.timeout(5000) });
    if (!res.ok) return undefined;
    const m = /^nodejs_heap_size_used_bytes(?:\{[^}]*\})?\s+([0-9.eE+-]+)/m.exec(await res.text());
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}
