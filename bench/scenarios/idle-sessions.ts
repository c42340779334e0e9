import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import type { ConnParams, Transport } from '../connection.js';
import { pgClientConfig } from '../connection.js';
import { BenchError } from '../errors.js';
import { readRssBytes } from '../processes.js';
import type { Measurement, Sample, TableSpec } from '../scenario.js';
import type { MiddleProcess, Target } from '../targets.js';
import { inScenario } from '../targets.js';
import { transportVariants } from './select-only.js';

/** Connections opened at once; stays well under Sluice's default max_unauthenticated (256). */
const BATCH = 50;
const WARMUP_SESSIONS = 20;
const SETTLE_MS = 1000;
const KiB = 1024;
const MiB = 1024 * 1024;

async function openSessions(conn: ConnParams, n: number): Promise<pg.Client[]> {
  const clients: pg.Client[] = [];
  try {
    for (let i = 0; i < n; i += BATCH) {
      const batch = Array.from({ length: Math.min(BATCH, n - i) }, () => {
        const c = new pg.Client(pgClientConfig(conn));
        c.on('error', () => undefined);
        clients.push(c);
        return c.connect().then(() => c.query('SELECT 1'));
      });
      await Promise.all(batch);
    }
    return clients;
  } catch (err) {
    await closeSessions(clients);
    throw err;
  }
}

async function closeSessions(clients: readonly pg.Client[]): Promise<void> {
  await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
}

/**
 * Memory of the process in the middle (Sluice or pgbouncer) per
 * authenticated session that ran one query and then sits idle.
 */
export const idleSessions: Measurement = {
  id: 'idle',
  // Restarting the process and opening a thousand sessions is slow, and
  // the figure moves by a few percent at most between repetitions.
  maxReps: 2,
  variants: transportVariants,
  subjects: (ctx) => ctx.targets.filter((t) => t.kind === 'pgbouncer' || t.kind === 'sluice'),
  async run(ctx, variant, target) {
    const middle = target.middle;
    if (!middle) throw new BenchError('bench_no_middle', `${target.name} has no process in the middle to measure`);
    // A fresh process: memory that earlier scenarios freed but the process
    // kept would otherwise absorb the sessions and hide their cost.
    await middle.restart({ inspect: true });
    try {
      return await measure(middle, target.conn(variant.key as Transport), ctx.opts.idleSessions);
    } finally {
      // Later measurements get a process without the inspector attached.
      await middle.restart();
    }
  },
};

async function measure(middle: MiddleProcess, conn: ConnParams, n: number): Promise<Sample> {
  await closeSessions(await openSessions(conn, WARMUP_SESSIONS));
  // The slope between half and all of the sessions: what the first
  // sessions pay once per process (lazy initialisation, pools) stays out.
  const half = Math.floor(n / 2);
  const clients: pg.Client[] = [];
  const snapshot = async () => {
    await sleep(SETTLE_MS);
    // Heap first: it forces a full collection, which RSS then reflects.
    const heap = await middle.heapUsedBytes?.();
    return { heap, rss: readRssBytes(middle.pid()) };
  };
  try {
    clients.push(...(await openSessions(conn, half)));
    const a = await snapshot();
    clients.push(...(await openSessions(conn, n - half)));
    const b = await snapshot();
    return {
      rssPerSessionKiB: (b.rss - a.rss) / (n - half) / KiB,
      heapPerSessionKiB: a.heap !== undefined && b.heap !== undefined ? (b.heap - a.heap) / (n - half) / KiB : undefined,
      rssMiB: b.rss / MiB,
    };
  } finally {
    await closeSessions(clients);
  }
}

const isMiddle = (t: Target) => t.kind === 'pgbouncer' || inScenario(t, 5);

export const scenario5: TableSpec = {
  scenario: 5,
  title: 'Idle sessions',
  measurement: idleSessions,
  describe: (o) =>
    `${o.idleSessions} authenticated sessions that ran SELECT 1 and stay idle. The middle process is restarted and ${WARMUP_SESSIONS} sessions come and go; memory per session is the growth from ${Math.floor(o.idleSessions / 2)} to ${o.idleSessions} open sessions, divided by the sessions added. RSS from /proc/<pid>/status; heap from Sluice's /metrics (nodejs_heap_size_used_bytes) right after a full garbage collection forced through the inspector. At most 2 repetitions. A direct session is a PostgreSQL backend process, so direct has no row.`,
  metrics: [
    { key: 'rssPerSessionKiB', header: 'RSS KiB/session', digits: 1 },
    { key: 'heapPerSessionKiB', header: 'heap KiB/session', digits: 1 },
    { key: 'rssMiB', header: 'RSS MiB with sessions', digits: 1 },
  ],
  ratio: { metric: 'rssPerSessionKiB', higherIsBetter: false },
  includes: isMiddle,
};
