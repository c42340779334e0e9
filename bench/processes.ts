import { execFile, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { BenchError } from './errors.js';

export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/**
 * PostgreSQL tools and pgbouncer refuse to run as root. setpriv execs in
 * place (runuser forks), so the spawned pid is the server's own pid and its
 * memory can be read from /proc.
 */
export function asPostgresUser(cmd: string, args: readonly string[]): [string, string[]] {
  return isRoot() ? ['setpriv', ['--reuid=postgres', '--regid=postgres', '--init-groups', '--', cmd, ...args]] : [cmd, [...args]];
}

export interface CommandResult {
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command to completion; rejects with its stderr tail (never its environment). */
export function runCommand(
  cmd: string,
  args: readonly string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {},
): Promise<CommandResult> {
  return new Promise((resolveRun, reject) => {
    execFile(
      cmd,
      [...args],
      { env: opts.env ?? process.env, cwd: opts.cwd, timeout: opts.timeoutMs ?? 600_000, maxBuffer: 256 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err) {
          const detail = tail(String(stderr || stdout || err.message), 8);
          reject(new BenchError('bench_command_failed', `${cmd} ${args[0] ?? ''} failed: ${detail}`, { cause: err }));
        } else {
          resolveRun({ stdout: String(stdout), stderr: String(stderr) });
        }
      },
    );
  });
}

export function tail(text: string, lines: number): string {
  return text.trim().split('\n').slice(-lines).join('\n');
}

function tryConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolveTry) => {
    const s = connect({ host, port });
    s.once('connect', () => {
      s.destroy();
      resolveTry(true);
    });
    s.once('error', () => resolveTry(false));
  });
}

/** Polls until something accepts TCP connections on host:port, or `alive()` turns false, or time runs out. */
export async function waitForPort(host: string, port: number, opts: { timeoutMs: number; alive?: () => boolean; what: string }): Promise<void> {
  const deadline = Date.now() + opts.timeoutMs;
  while (Date.now() < deadline) {
    if (opts.alive && !opts.alive()) throw new BenchError('bench_process_exited', `${opts.what} exited before listening on ${host}:${port}`);
    if (await tryConnect(host, port)) return;
    await sleep(50);
  }
  throw new BenchError('bench_start_timeout', `${opts.what} did not listen on ${host}:${port} within ${opts.timeoutMs / 1000} s`);
}

/** Resident set size of a process, from /proc/<pid>/status (Linux only). */
export function readRssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
  if (!m) throw new BenchError('bench_no_rss', `no VmRSS in /proc/${pid}/status`);
  return Number(m[1]) * 1024;
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
export async function stopChild(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (hasExited(child)) return;
  const done = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await done;
  clearTimeout(timer);
}

export function hasExited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}
