import { describe, expect, it } from 'vitest';
import { parseArgs } from '../../bench/args.js';
import { renderMarkdown, renderText } from '../../bench/render.js';
import { REPO_ROOT, runBench } from '../../bench/run.js';

/**
 * A short real run so the harness does not rot: its own PostgreSQL, Debian's
 * pgbouncer (installed when absent; a missing pgbouncer fails this test),
 * pgbench -S over both transports and both protocols.
 */
describe('benchmark harness smoke run', () => {
  it('reports positive pgbench -S TPS for direct and pgbouncer on every variant', async () => {
    const opts = parseArgs(
      ['--scenarios', '1', '--targets', 'direct,pgbouncer', '--duration', '1', '--reps', '1', '--scale', '1', '--clients', '2', '--no-build'],
      REPO_ROOT,
    );
    const report = await runBench(opts);

    expect(report.tables.map((t) => t.scenario)).toEqual([1]);
    const table = report.tables[0];
    for (const target of ['direct', 'pgbouncer']) {
      const rows = table.rows.filter((r) => r.target.name === target);
      expect(rows.map((r) => `${r.variant.Transport}/${r.variant.Protocol}`)).toEqual(['plain/simple', 'plain/prepared', 'TLS/simple', 'TLS/prepared']);
      for (const row of rows) {
        expect(row.status).toBeUndefined();
        expect(row.metrics?.tps?.median).toBeGreaterThan(0);
        expect(row.metrics?.latencyP99Ms?.median).toBeGreaterThan(0);
      }
    }
    expect(report.machine.pgbouncer).toMatch(/^\d+\.\d+/);
    expect(report.machine.postgres).toMatch(/^\d+/);
    expect(report.command).toContain('--scenarios 1');
    expect(renderText(report)).toMatch(/plain\s+simple\s+pgbouncer\s+[\d,]+/);
    expect(renderMarkdown(report)).toContain('## Scenario 1: pgbench -S (select only)');
  }, 120_000);
});
