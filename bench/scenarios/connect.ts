import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Transport } from '../connection.js';
import { runPgbench } from '../pgbench.js';
import type { Measurement, TableSpec } from '../scenario.js';
import { inScenario } from '../targets.js';
import { transportVariants } from './select-only.js';

const scriptFile = (workDir: string) => join(workDir, 'connect.sql');

/**
 * pgbench -C with one client: every transaction opens a connection,
 * authenticates, runs SELECT 1 and disconnects, so latency is per connection.
 */
export const connectSetup: Measurement = {
  id: 'connect',
  async prepare(ctx) {
    writeFileSync(scriptFile(ctx.workDir), 'SELECT 1;\n');
  },
  variants: transportVariants,
  subjects: (ctx) => ctx.targets.filter((t) => t.kind !== 'store'),
  async run(ctx, variant, target) {
    const r = await runPgbench(ctx.db.cluster.binDir, target.conn(variant.key as Transport), {
      clients: 1,
      threads: 1,
      durationS: ctx.opts.durationS,
      script: { file: scriptFile(ctx.workDir) },
      protocol: 'simple',
      reconnect: true,
    });
    // With -C, pgbench's average latency is wall time per transaction
    // including connect and disconnect; its per-transaction log leaves the
    // connection out, so it gives no per-connection percentile.
    return { msPerConnection: r.latencyAvgMs, connectMs: r.connectionMs, perSecond: r.tps };
  },
};

export const scenario3: TableSpec = {
  scenario: 3,
  title: 'Connection setup',
  measurement: connectSetup,
  describe: (o) =>
    `pgbench -C, 1 client, ${o.durationS} s per run: connect, authenticate (SCRAM for direct and pgbouncer, a token for Sluice), SELECT 1, disconnect.`,
  metrics: [
    { key: 'msPerConnection', header: 'ms per connection', digits: 2 },
    { key: 'connectMs', header: 'connect ms', digits: 2 },
    { key: 'perSecond', header: 'connections/s', digits: 0 },
  ],
  ratio: { metric: 'msPerConnection', higherIsBetter: false },
  includes: (t) => t.kind === 'direct' || t.kind === 'pgbouncer' || inScenario(t, 3),
};
