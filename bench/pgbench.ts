import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { ConnParams } from './connection.js';
import { libpqEnv } from './connection.js';
import { BenchError } from './errors.js';
import type { Protocol } from './options.js';
import { runCommand } from './processes.js';
import { percentileInPlace } from './stats.js';

export interface PgbenchArgs {
  readonly clients: number;
  readonly threads: number;
  /** -T seconds, or -t transactions per client. */
  readonly durationS?: number;
  readonly transactions?: number;
  /** Built-in select-only script (-S), or a custom script file (-f). */
  readonly script: { readonly builtin: 'select-only' } | { readonly file: string };
  readonly protocol: Protocol;
  /** -C: a new connection for every transaction. */
  readonly reconnect?: boolean;
  /** Write per-transaction logs to this directory for the p99 latency. */
  readonly logDir?: string;
}

export interface PgbenchResult {
  readonly tps: number;
  readonly transactions: number;
  readonly latencyAvgMs: number;
  readonly latencyP99Ms?: number;
  /** With -C: average time to connect and authenticate. */
  readonly connectionMs?: number;
}

export async function runPgbench(binDir: string, conn: ConnParams, a: PgbenchArgs): Promise<PgbenchResult> {
  const args = ['-n', '-c', String(a.clients), '-j', String(Math.min(a.threads, a.clients)), '-M', a.protocol];
  if (a.durationS !== undefined) args.push('-T', String(a.durationS));
  if (a.transactions !== undefined) args.push('-t', String(a.transactions));
  if ('builtin' in a.script) args.push('-S');
  else args.push('-f', a.script.file);
  if (a.reconnect) args.push('-C');
  const logDir = a.logDir ? mkdtempSync(join(a.logDir, 'pgbench-')) : undefined;
  if (logDir) args.push('-l', `--log-prefix=${join(logDir, 'tx')}`);
  try {
    const { stdout } = await runCommand(join(binDir, 'pgbench'), args, { env: libpqEnv(conn), timeoutMs: 600_000 });
    const parsed = parsePgbenchOutput(stdout);
    return logDir ? { ...parsed, latencyP99Ms: p99FromLogs(logDir) } : parsed;
  } finally {
    if (logDir) rmSync(logDir, { recursive: true, force: true });
  }
}

export function parsePgbenchOutput(out: string): PgbenchResult {
  const num = (re: RegExp) => {
    const m = re.exec(out);
    return m ? Number(m[1]) : undefined;
  };
  const tps = num(/^tps = ([\d.]+)/m);
  const latencyAvgMs = num(/^latency average = ([\d.]+) ms/m);
  const transactions = num(/^number of transactions actually processed: (\d+)/m);
  const failed = num(/^number of failed transactions: (\d+)/m) ?? 0;
  if (tps === undefined || latencyAvgMs === undefined || transactions === undefined) {
    throw new BenchError('bench_pgbench_output', `unexpected pgbench output: ${out.trim().split('\n').slice(-4).join(' / ')}`);
  }
  if (failed > 0) throw new BenchError('bench_pgbench_failed', `pgbench reported ${failed} failed transactions`);
  return { tps, transactions, latencyAvgMs, connectionMs: num(/^average connection time = ([\d.]+) ms/m) };
}

/** Column 3 of pgbench's per-transaction log is the latency in microseconds. */
function p99FromLogs(dir: string): number {
  const latencies: number[] = [];
  for (const f of readdirSync(dir)) {
    const text = readFileSync(join(dir, f), 'latin1');
    let start = 0;
    while (start < text.length) {
      let end = text.indexOf('\n', start);
      if (end < 0) end = text.length;
      const a = text.indexOf(' ', start);
      const b = text.indexOf(' ', a + 1);
      const c = text.indexOf(' ', b + 1);
      if (a > 0 && c > b && c < end) latencies.push(Number(text.slice(b + 1, c)));
      start = end + 1;
    }
  }
  return percentileInPlace(latencies, 99) / 1000;
}
