import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import pg from 'pg';
import type { TestGateway } from './gateway.js';

export interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a PostgreSQL client binary (psql, pgbench) with the token as PGPASSWORD. */
export function runClient(bin: string, args: string[], env: Record<string, string>, input?: string, timeoutMs = 60_000): Promise<Run> & { child: ChildProcess } {
  const child = spawn(bin, args, {
    env: { PATH: process.env.PATH ?? '', PGCONNECT_TIMEOUT: '10', LANG: 'C.UTF-8', ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const p = collectOutput(child, timeoutMs);
  child.stdin!.end(input ?? '');
  return Object.assign(p, { child });
}

/** Waits for a child process to exit, collecting its output; kills it after `timeoutMs`. */
export function collectOutput(child: ChildProcess, timeoutMs: number): Promise<Run> {
  return new Promise<Run>((resolveRun, reject) => {
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolveRun({ code, stdout, stderr });
    });
  });
}

export function psql(t: TestGateway, url: string, token: string, args: string[], input?: string): Promise<Run> & { child: ChildProcess } {
  return runClient(join(t.pg.binDir, 'psql'), ['-X', '-v', 'ON_ERROR_STOP=1', '-At', url, ...args], { PGPASSWORD: token }, input);
}

/** A node-postgres client connected through Sluice. */
export async function pgClient(t: TestGateway, grant: string, token: string, opts: Partial<pg.ClientConfig> = {}): Promise<pg.Client> {
  const c = new pg.Client({
    host: t.host,
    port: t.port,
    user: grant,
    database: 'orders',
    password: token,
    ssl: { rejectUnauthorized: false },
    ...opts,
  });
  await c.connect();
  return c;
}
