import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Transport } from '../connection.js';
import { libpqEnv } from '../connection.js';
import { BULK_TABLE } from '../database.js';
import { BenchError } from '../errors.js';
import { runPgbench } from '../pgbench.js';
import { runCommand } from '../processes.js';
import type { BenchContext, Measurement, TableSpec } from '../scenario.js';
import type { Target } from '../targets.js';
import { inScenario } from '../targets.js';
import { transportLabel } from './select-only.js';

const scriptFile = (workDir: string) => join(workDir, 'bulk.sql');

/**
 * The whole bulk table to one client. SELECT goes through pgbench (libpq
 * collects every row; the transaction latency is the wall time); COPY goes
 * through psql with its output to /dev/null and \timing around the COPY alone.
 */
export const bulkRead: Measurement = {
  id: 'bulk',
  async prepare(ctx) {
    writeFileSync(scriptFile(ctx.workDir), `SELECT * FROM ${BULK_TABLE};\n`);
  },
  variants: (ctx) =>
    ctx.opts.transports.flatMap((t) =>
      (['select', 'copy'] as const).map((q) => ({ key: `${t}/${q}`, labels: { Transport: transportLabel(t), Query: q === 'select' ? 'SELECT *' : 'COPY TO STDOUT' } })),
    ),
  subjects: (ctx) => ctx.targets.filter((t) => t.kind !== 'store'),
  async run(ctx, variant, target) {
    const [transport, query] = variant.key.split('/') as [Transport, 'select' | 'copy'];
    const ms = query === 'select' ? await selectMs(ctx, target, transport) : await copyMs(ctx, target, transport);
    return { wallS: ms / 1000, rowsPerS: ctx.db.bulkRows / (ms / 1000) };
  },
};

async function selectMs(ctx: BenchContext, target: Target, transport: Transport): Promise<number> {
  const r = await runPgbench(ctx.db.cluster.binDir, target.conn(transport), {
    clients: 1,
    threads: 1,
    transactions: 1,
    script: { file: scriptFile(ctx.workDir) },
    protocol: 'simple',
  });
  return r.latencyAvgMs;
}

async function copyMs(ctx: BenchContext, target: Target, transport: Transport): Promise<number> {
  const { stdout } = await runCommand(
    join(ctx.db.cluster.binDir, 'psql'),
    ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-o', '/dev/null', '-c', '\\timing on', '-c', `COPY ${BULK_TABLE} TO STDOUT`],
    { env: libpqEnv(target.conn(transport)) },
  );
  const m = /^Time: ([\d.]+) ms/m.exec(stdout);
  if (!m) throw new BenchError('bench_psql_output', `psql printed no timing for COPY: ${stdout.trim().slice(0, 200)}`);
  return Number(m[1]);
}

export const scenario4: TableSpec = {
  scenario: 4,
  title: 'Bulk read',
  measurement: bulkRead,
  describe: (o) => `${o.bulkRows.toLocaleString('en-US')} rows × 5 columns (int, text, text, numeric, timestamptz) streamed to one client.`,
  metrics: [
    { key: 'wallS', header: 'wall s', digits: 3 },
    { key: 'rowsPerS', header: 'rows/s', digits: 0 },
  ],
  ratio: { metric: 'rowsPerS', higherIsBetter: true },
  includes: (t) => t.kind === 'direct' || t.kind === 'pgbouncer' || inScenario(t, 4),
};
