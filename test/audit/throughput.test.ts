import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SqliteAuditStore } from '../../src/audit/sqlite-audit-store.js';
import { statementEvent } from './sample-events.js';

const dir = mkdtempSync(join(tmpdir(), 'sluice-audit-throughput-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const COUNT = 10_000;

// Measured and printed for the docs, never asserted: timing depends on the machine.
describe('SqliteAuditStore throughput', () => {
  for (const synchronous of ['normal', 'full'] as const) {
    it(`appends ${COUNT} single-event appends (synchronous ${synchronous})`, async () => {
      const store = SqliteAuditStore.open({ path: join(dir, `${synchronous}.db`), synchronous });
      try {
        let started = performance.now();
        for (let i = 0; i < COUNT; i++) await store.append([statementEvent(i)]);
        const oneByOne = COUNT / ((performance.now() - started) / 1000);
        const afterSequential = store.stats().commits;

        // 100 sessions each awaiting its own appends: what group commit is for.
        started = performance.now();
        await Promise.all(
          Array.from({ length: 100 }, async (_, s) => {
            for (let i = 0; i < COUNT / 100; i++) await store.append([statementEvent(s + i)]);
          }),
        );
        const sessions = COUNT / ((performance.now() - started) / 1000);
        const sessionCommits = store.stats().commits - afterSequential;

        started = performance.now();
        await Promise.all(Array.from({ length: COUNT }, (_, i) => store.append([statementEvent(i)])));
        const burst = COUNT / ((performance.now() - started) / 1000);
        const burstCommits = store.stats().commits - afterSequential - sessionCommits;

        console.log(
          `audit appends, synchronous=${synchronous}: ${Math.round(oneByOne)}/s awaited one at a time (${afterSequential} commits); ` +
            `${Math.round(sessions)}/s from 100 concurrent callers (${sessionCommits} commits); ` +
            `${Math.round(burst)}/s issued in one tick (${burstCommits} commit)`,
        );
        expect(store.lastSeq()).toBe(3 * COUNT);
        expect(sessionCommits).toBeLessThanOrEqual(COUNT / 100);
        expect(burstCommits).toBe(1);
        expect(afterSequential).toBe(COUNT);
      } finally {
        await store.close();
      }
    });
  }
});
