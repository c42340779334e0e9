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

        started = performance.now();
        await Promise.all(Array.from({ length: COUNT }, (_, i) => store.append([statementEvent(i)])));
        const concurrent = COUNT / ((performance.now() - started) / 1000);
        const concurrentCommits = store.stats().commits - afterSequential;

        console.log(
          `audit appends, synchronous=${synchronous}: ${Math.round(oneByOne)}/s awaited one at a time (${afterSequential} commits), ` +
            `${Math.round(concurrent)}/s issued concurrently (${concurrentCommits} commit${concurrentCommits === 1 ? '' : 's'})`,
        );
        expect(store.lastSeq()).toBe(2 * COUNT);
        expect(afterSequential).toBe(COUNT);
      } finally {
        await store.close();
      }
    });
  }
});
