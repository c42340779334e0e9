import type { Transport } from '../connection.js';
import type { Protocol } from '../options.js';
import { runPgbench } from '../pgbench.js';
import type { BenchContext, Measurement, TableSpec, Variant } from '../scenario.js';
import { inScenario } from '../targets.js';

export function transportVariants(ctx: BenchContext): Variant[] {
  return ctx.opts.transports.map((t) => ({ key: t, labels: { Transport: transportLabel(t) } }));
}

export function transportLabel(t: Transport): string {
  return t === 'tls' ? 'TLS' : 'plain';
}

/** pgbench -S: one indexed single-row SELECT per transaction. */
export const selectOnly: Measurement = {
  id: 'select',
  variants: (ctx) =>
    ctx.opts.transports.flatMap((t) =>
      ctx.opts.protocols.map((p) => ({ key: `${t}/${p}`, labels: { Transport: transportLabel(t), Protocol: p } })),
    ),
  subjects: (ctx) => ctx.targets.filter((t) => t.kind !== 'store'),
  async run(ctx, variant, target) {
    const [transport, protocol] = variant.key.split('/') as [Transport, Protocol];
    const r = await runPgbench(ctx.db.cluster.binDir, target.conn(transport), {
      clients: ctx.opts.clients,
      threads: ctx.opts.threads,
      durationS: ctx.opts.durationS,
      script: { builtin: 'select-only' },
      protocol,
      logDir: ctx.workDir,
    });
    return { tps: r.tps, latencyAvgMs: r.latencyAvgMs, latencyP99Ms: r.latencyP99Ms };
  },
};

const metrics = [
  { key: 'tps', header: 'TPS', digits: 0 },
  { key: 'latencyAvgMs', header: 'avg ms', digits: 3 },
  { key: 'latencyP99Ms', header: 'p99 ms', digits: 3 },
];

export const scenario1: TableSpec = {
  scenario: 1,
  title: 'pgbench -S (select only)',
  measurement: selectOnly,
  describe: (o) => `pgbench -S, ${o.clients} clients, ${o.threads} threads, ${o.durationS} s per run, scale ${o.scale}, ${o.protocols.join(' and ')} protocol.`,
  metrics,
  ratio: { metric: 'tps', higherIsBetter: true },
  includes: (t) => t.kind === 'direct' || t.kind === 'pgbouncer' || inScenario(t, 1),
};

export const scenario2: TableSpec = {
  scenario: 2,
  title: 'pgbench -S per inspection layer',
  measurement: selectOnly,
  describe: (o) => `The runs of scenario 1 through every Sluice configuration, one row per set of inspection layers (${o.clients} clients).`,
  metrics,
  ratio: { metric: 'tps', higherIsBetter: true },
  includes: (t) => inScenario(t, 2),
};
