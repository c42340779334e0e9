import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { AuditEvent, AuditQuery } from '../../src/events/types.js';
import { runClient, type Run } from '../support/clients.js';
import { startGateway, type TestGateway } from '../support/gateway.js';
import { testPostgres } from '../support/pg-env.js';

let t: TestGateway;
let token: string;

beforeAll(async () => {
  t = await startGateway();
  token = await t.token('bench-runner', ['dba']);
});
afterAll(async () => {
  await t?.stop();
});

function pgbench(grant: string, args: string[]): Promise<Run> {
  return runClient(
    join(t.pg.binDir, 'pgbench'),
    ['-h', t.host, '-p', String(t.port), '-U', grant, ...args, 'orders'],
    { PGPASSWORD: token, PGSSLMODE: 'require' },
    undefined,
    120_000,
  );
}

/** All events matching `q`, paging past the store's per-query limit. */
function queryAll(q: AuditQuery): AuditEvent[] {
  const all: AuditEvent[] = [];
  for (let afterSeq = q.afterSeq ?? 0; ; ) {
    const page = t.gw.store.query({ ...q, afterSeq, limit: 1000, order: 'asc' });
    all.push(...page);
    if (page.length < 1000) return all;
    afterSeq = page[page.length - 1].seq;
  }
}

/** The sessions opened after `afterSeq` (at least `atLeast`), once all of them have closed and been recorded. */
async function closedSessionsAfter(afterSeq: number, atLeast: number): Promise<Set<string>> {
  return vi.waitFor(
    () => {
      const opened = queryAll({ types: ['session.opened'], afterSeq });
      expect(opened.length).toBeGreaterThanOrEqual(atLeast);
      const closed = queryAll({ types: ['session.closed'], afterSeq });
      const ids = new Set(opened.map((e) => e.sessionId!));
      expect(closed.filter((e) => ids.has(e.sessionId!))).toHaveLength(ids.size);
      return ids;
    },
    { timeout: 20_000 },
  );
}

function transactionsOf(run: Run): number {
  const m = /number of transactions actually processed: (\d+)/.exec(run.stdout);
  expect(m, run.stdout + run.stderr).not.toBeNull();
  return Number(m![1]);
}

describe('pgbench through Sluice', () => {
  beforeAll(async () => {
    const before = t.gw.store.lastSeq();
    const init = await pgbench('ddl', ['-i', '-s', '1']);
    expect(init.code, init.stderr).toBe(0);
    expect(init.stderr).toContain('done in');
    const sessions = await closedSessionsAfter(before, 1);
    expect(sessions.size).toBe(1);
    const [session] = [...sessions];
    const completed = queryAll({ types: ['statement.completed'], sessionId: session });
    // The client-side data generation is one COPY of 100,000 rows through the relay.
    expect(completed.some((e) => (e.data.tags as string[]).includes('COPY 100000') && e.data.rows === 100_000)).toBe(true);
    expect(completed.filter((e) => e.data.sqlstate !== undefined || e.data.skipped)).toEqual([]);
    expect(completed.map((e) => (e.data.tags as string[])[0])).toEqual(expect.arrayContaining(['DROP TABLE', 'CREATE TABLE', 'BEGIN', 'COMMIT', 'VACUUM']));
    const opened = queryAll({ types: ['session.opened'], afterSeq: before })[0];
    expect(opened.data).toMatchObject({ grant: 'ddl', tls: true, applicationName: 'pgbench' });

    // GRANT needs grant admin; the test grants as the superuser.
    const env = testPostgres();
    const su = new pg.Client({ host: env.host, port: env.port, user: env.superuser.user, password: env.superuser.password, database: env.database });
    await su.connect();
    await su.query('grant select on pgbench_accounts, pgbench_branches, pgbench_tellers to sluice_reader');
    await su.end();
  }, 120_000);

  for (const mode of ['simple', 'prepared'] as const) {
    it(`runs the select-only benchmark with -M ${mode} and audits every transaction`, async () => {
      const before = t.gw.store.lastSeq();
      const run = await pgbench('read', ['-n', '-S', '-T', '3', '-c', '4', '-M', mode]);
      expect(run.code, run.stderr).toBe(0);
      expect(run.stdout).toContain(`query mode: ${mode}`);
      expect(run.stdout).toContain('number of failed transactions: 0');
      const transactions = transactionsOf(run);
      expect(transactions).toBeGreaterThan(0);

      // pgbench opens one more session first, to read the scale from pgbench_branches.
      const sessions = await closedSessionsAfter(before, 5);
      const started = queryAll({ types: ['statement.started'], afterSeq: before, text: 'FROM pgbench_accounts WHERE aid' }).filter((e) => sessions.has(e.sessionId!));
      const completed = new Map(
        queryAll({ types: ['statement.completed'], afterSeq: before })
          .filter((e) => sessions.has(e.sessionId!))
          .map((e) => [`${e.sessionId}/${String(e.data.statement)}`, e]),
      );
      // When -T runs out pgbench lets each client finish its transaction and counts it, so the numbers match exactly.
      expect(started).toHaveLength(transactions);
      const finished = started.map((s) => completed.get(`${s.sessionId}/${String(s.data.statement)}`)?.data);
      expect(finished.filter((c) => c?.sqlstate === undefined && c?.rows === 1 && (c.tags as string[])[0] === 'SELECT 1')).toHaveLength(transactions);

      const sample = started[started.length - 1].data;
      if (mode === 'simple') {
        expect(sample).toMatchObject({ protocol: 'simple', text: expect.stringMatching(/^SELECT abalance FROM pgbench_accounts WHERE aid = \d+;$/) });
      } else {
        expect(sample).toMatchObject({ protocol: 'extended', text: 'SELECT abalance FROM pgbench_accounts WHERE aid = $1;', statementName: 'P_0' });
        expect(sample.params).toEqual([expect.stringMatching(/^\d+$/)]);
      }
      const closed = queryAll({ types: ['session.closed'], afterSeq: before }).filter((e) => sessions.has(e.sessionId!));
      expect(new Set(closed.map((e) => e.data.reason))).toEqual(new Set(['client_terminated']));
      expect(closed.reduce((n, e) => n + (e.data.statements as number), 0)).toBeGreaterThanOrEqual(started.length);
    }, 120_000);
  }
});
