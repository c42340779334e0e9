import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { AuditEventInput } from '../../src/events/types.js';
import { BenchError } from '../errors.js';
import type { BenchContext, Measurement, TableSpec } from '../scenario.js';
import type { Target } from '../targets.js';
import { unavailableTarget } from '../targets.js';

/** The part of SqliteAuditStore the benchmark drives. */
interface AuditStoreUnderTest {
  append(events: readonly AuditEventInput[]): Promise<unknown>;
  close(): Promise<void>;
}

interface StoreModule {
  SqliteAuditStore: { open(o: { path: string; synchronous: 'normal' | 'full' }): AuditStoreUnderTest };
}

const STORE_FILE = 'src/audit/sqlite-audit-store.ts';

/**
 * Loaded at run time so the harness still runs (with this row unavailable)
 * while the store module is missing or broken mid-change.
 */
async function loadStore(root: string): Promise<StoreModule['SqliteAuditStore']> {
  const file = join(root, STORE_FILE);
  if (!existsSync(file)) throw new BenchError('bench_no_audit_store', `${STORE_FILE} does not exist`);
  const mod = (await import(pathToFileURL(file).href)) as Partial<StoreModule>;
  if (!mod.SqliteAuditStore) throw new BenchError('bench_no_audit_store', `${STORE_FILE} exports no SqliteAuditStore`);
  return mod.SqliteAuditStore;
}

/** What the gateway appends for one pgbench -S statement. */
function statementEvent(session: number): AuditEventInput {
  return {
    type: 'statement.completed',
    time: new Date().toISOString(),
    sessionId: `bench-${session}`,
    principal: { issuer: 'https://sluice.invalid/bench', subject: 'bench', kind: 'machine' },
    resource: 'bench',
    data: { statement: 'SELECT abalance FROM pgbench_accounts WHERE aid = 48213;', rows: 1, durationMs: 0.12 },
  };
}

async function storeSubject(ctx: BenchContext): Promise<Target> {
  const base = { name: 'audit-store', label: 'SqliteAuditStore, in process', kind: 'store' as const };
  try {
    await loadStore(ctx.root);
    return {
      ...base,
      conn: () => {
        throw new BenchError('bench_no_connection', 'the audit store is measured in process, not over a connection');
      },
    };
  } catch (err) {
    return unavailableTarget(base, (err as Error).message);
  }
}

/**
 * Appends from W concurrent writers, each awaiting its own single-event
 * append as a gateway session does per statement, for the configured time.
 */
export const auditThroughput: Measurement = {
  id: 'audit',
  variants: (ctx) =>
    (['normal', 'full'] as const).flatMap((sync) =>
      [...new Set([1, ctx.opts.clients])].map((w) => ({ key: `${sync}/${w}`, labels: { synchronous: sync, writers: String(w) } })),
    ),
  subjects: async (ctx) => [await storeSubject(ctx)],
  async run(ctx, variant) {
    const [sync, w] = variant.key.split('/') as ['normal' | 'full', string];
    const Store = await loadStore(ctx.root);
    const path = join(ctx.workDir, `audit-${sync}-${w}.db`);
    const store = Store.open({ path, synchronous: sync });
    try {
      const deadline = performance.now() + ctx.opts.durationS * 1000;
      let events = 0;
      const writer = async (id: number) => {
        while (performance.now() < deadline) {
          await store.append([statementEvent(id)]);
          events++;
        }
      };
      const start = performance.now();
      await Promise.all(Array.from({ length: Number(w) }, (_, i) => writer(i)));
      const seconds = (performance.now() - start) / 1000;
      return { eventsPerS: events / seconds, usPerEvent: (seconds * 1e6) / events };
    } finally {
      await store.close();
      rmSync(path, { force: true });
      rmSync(`${path}-wal`, { force: true });
      rmSync(`${path}-shm`, { force: true });
    }
  },
};

export const scenario6: TableSpec = {
  scenario: 6,
  title: 'Audit throughput',
  measurement: auditThroughput,
  describe: (o) =>
    `SqliteAuditStore.append of one statement event per call from 1 and ${o.clients} concurrent writers for ${o.durationS} s, with synchronous normal (the shipped default) and full. Each append resolves after its commit.`,
  metrics: [
    { key: 'eventsPerS', header: 'events/s', digits: 0 },
    { key: 'usPerEvent', header: 'µs/event', digits: 1 },
  ],
  includes: (t) => t.kind === 'store',
};
