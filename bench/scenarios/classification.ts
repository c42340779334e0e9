import { BenchError } from '../errors.js';
import type { BenchContext, Measurement, TableSpec } from '../scenario.js';
import type { Target } from '../targets.js';
import { initSqlParser, classify, classifyCached, ClassificationCache } from '../../src/sql/index.js';

/** What pgbench -S sends (a new literal each time), and a longer reporting query. */
const STATEMENTS: Record<string, (i: number) => string> = {
  'pgbench-S': (i) => `SELECT abalance FROM pgbench_accounts WHERE aid = ${1 + (i % 1_000_000)};`,
  'report-200': (i) =>
    `SELECT c.id, c.name, sum(o.total) AS spent FROM customers c JOIN orders o ON o.customer_id = c.id WHERE o.status = 'shipped' AND c.id > ${i % 1000} GROUP BY c.id, c.name ORDER BY spent DESC LIMIT 10`,
};

function classifierSubject(): Target {
  return {
    name: 'classifier',
    label: 'src/sql classify, in process',
    kind: 'classifier',
    conn: () => {
      throw new BenchError('bench_no_connection', 'the classifier is measured in process, not over a connection');
    },
  };
}

/**
 * Statements per second the guard's classifier sustains on the gateway's
 * thread: `new text` makes every statement distinct (simple protocol with
 * literals), `same text` repeats one (prepared statements, repeated queries)
 * and is served by the cache.
 */
export const classificationThroughput: Measurement = {
  id: 'classification',
  variants: () =>
    Object.keys(STATEMENTS).flatMap((statement) =>
      (['new text', 'same text'] as const).map((text) => ({ key: `${statement}/${text}`, labels: { statement, text } })),
    ),
  subjects: () => [classifierSubject()],
  async run(ctx: BenchContext, variant) {
    await initSqlParser();
    const [statement, text] = variant.key.split('/') as [string, string];
    const make = STATEMENTS[statement];
    const cache = new ClassificationCache(32 * 1024 * 1024);
    const deadline = performance.now() + ctx.opts.durationS * 1000;
    const start = performance.now();
    let n = 0;
    while (performance.now() < deadline) {
      for (let i = 0; i < 100; i++, n++) {
        const r = text === 'same text' ? classifyCached(make(0), undefined, cache) : classify(make(n));
        if (!r.ok) throw new BenchError('bench_classify_failed', `the benchmark statement did not parse: ${r.message}`);
      }
    }
    const seconds = (performance.now() - start) / 1000;
    return { statementsPerS: n / seconds, usPerStatement: (seconds * 1e6) / n };
  },
};

export const scenario7: TableSpec = {
  scenario: 7,
  title: 'Statement classification',
  measurement: classificationThroughput,
  describe: (o) =>
    `The guard's classifier (libpg-query, the PostgreSQL 18 parser in WASM) on one thread for ${o.durationS} s: every statement new (simple protocol with literals, as pgbench -S sends) or the same text again (served by the cache by exact text).`,
  metrics: [
    { key: 'statementsPerS', header: 'statements/s', digits: 0 },
    { key: 'usPerStatement', header: 'µs/statement', digits: 2 },
  ],
  includes: (t) => t.kind === 'classifier',
};
