import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { canonicalJson, GENESIS_HASH, verifyChain } from '../../src/audit/hash-chain.js';
import { SqliteAuditStore } from '../../src/audit/sqlite-audit-store.js';
import { StoreError } from '../../src/errors.js';
import type { AuditEvent, AuditEventInput } from '../../src/events/types.js';
import type { Principal } from '../../src/identity/principal.js';
import { statementEvent } from './sample-events.js';

let dir: string;
const open: SqliteAuditStore[] = [];
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'sluice-audit-'));
});
afterEach(async () => {
  for (const s of open.splice(0)) await s.close();
  rmSync(dir, { recursive: true, force: true });
});

function openStore(opts: Partial<Parameters<typeof SqliteAuditStore.open>[0]> = {}): SqliteAuditStore {
  const store = SqliteAuditStore.open({ path: join(dir, 'audit.db'), synchronous: 'normal', ...opts });
  open.push(store);
  return store;
}

function all(store: SqliteAuditStore): AuditEvent[] {
  return store.query({ limit: 1000 });
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

describe('SqliteAuditStore appends', () => {
  it('chains events, returns them as stored, and continues the chain after reopening', async () => {
    const path = join(dir, 'audit.db');
    const store = SqliteAuditStore.open({ path, synchronous: 'normal' });
    expect(store.lastSeq()).toBe(0);
    const first = await store.append([statementEvent(0), statementEvent(1)]);
    const second = await store.append([statementEvent(2)]);
    expect([...first, ...second].map((e) => e.seq)).toEqual([1, 2, 3]);
    expect(first[0].prevHash).toBe(GENESIS_HASH);
    expect(first[1].prevHash).toBe(first[0].hash);
    expect(second[0].prevHash).toBe(first[1].hash);
    expect(all(store)).toEqual([...first, ...second]);
    await store.close();

    const reopened = openStore({ path });
    expect(reopened.lastSeq()).toBe(3);
    const [fourth] = await reopened.append([statementEvent(3)]);
    expect(fourth).toMatchObject({ seq: 4, chain: 'main', prevHash: second[0].hash });
    expect(verifyChain(all(reopened))).toEqual({ ok: true, count: 4, lastSeq: 4, headHash: fourth.hash });
  });

  it('keeps chains apart: each has its own gapless sequence and queries see only their own', async () => {
    const a = openStore({ chain: 'gw-a' });
    const b = openStore({ chain: 'gw-b' });
    await Promise.all([a.append([statementEvent(0)]), b.append([statementEvent(1), statementEvent(2)])]);
    await a.append([statementEvent(3)]);
    expect(all(a).map((e) => [e.chain, e.seq])).toEqual([['gw-a', 1], ['gw-a', 2]]);
    expect(all(b).map((e) => [e.chain, e.seq])).toEqual([['gw-b', 1], ['gw-b', 2]]);
    expect(verifyChain(all(a)).ok && verifyChain(all(b)).ok).toBe(true);
    expect(() => openStore({ chain: 'bad chain!' })).toThrow(expect.objectContaining({ code: 'store_chain_invalid' }));
  });

  it('writes appends made in the same tick in one transaction', async () => {
    const store = openStore();
    const results = await Promise.all(range(200).map((i) => store.append([statementEvent(i)])));
    expect(store.stats()).toEqual({ commits: 1, failedCommits: 0, events: 200 });
    expect(results.map(([e]) => e.seq)).toEqual(range(200).map((i) => i + 1));
  });

  it('lets deferred appends join the next commit, in append order, and commits them alone within a few milliseconds', async () => {
    const store = openStore();
    const deferred = store.append([statementEvent(1)], { defer: true });
    await new Promise((r) => setImmediate(r));
    expect(store.stats().commits).toBe(0);
    const urgent = await store.append([statementEvent(2)]);
    const [d] = await deferred;
    expect(store.stats().commits).toBe(1);
    expect([d.seq, urgent[0].seq]).toEqual([1, 2]);

    const alone = store.append([statementEvent(3)], { defer: true });
    expect((await alone)[0].seq).toBe(3);
    expect(store.stats().commits).toBe(2);
    expect(verifyChain(all(store)).ok).toBe(true);
  });

  it('groups many concurrent async callers into few transactions with gapless sequence numbers', async () => {
    const store = openStore();
    const callers = 50;
    const rounds = 6;
    const seen: number[] = [];
    await Promise.all(
      range(callers).map(async (c) => {
        for (let r = 0; r < rounds; r++) {
          const stored = await store.append([statementEvent(c), statementEvent(c + r)]);
          seen.push(...stored.map((e) => e.seq));
        }
      }),
    );
    const { commits, events } = store.stats();
    expect(events).toBe(callers * rounds * 2);
    expect(commits).toBeLessThanOrEqual(rounds);
    expect(seen.sort((x, y) => x - y)).toEqual(range(events).map((i) => i + 1));
    expect(verifyChain(all(store))).toMatchObject({ ok: true, lastSeq: events });
  });

  it('rejects an invalid event without touching the other appends of its tick', async () => {
    const store = openStore();
    const good = store.append([statementEvent(0)]);
    const badTime = store.append([statementEvent(1, { time: 'yesterday-ish' })]);
    const badData = store.append([statementEvent(2, { data: { n: 10n } })]);
    const badPrincipal = store.append([
      statementEvent(3, { principal: { issuer: 'i', subject: 's', kind: 'robot' } as unknown as Principal }),
    ]);
    for (const bad of [badTime, badData, badPrincipal]) {
      await expect(bad).rejects.toMatchObject({ name: 'StoreError', code: 'audit_event_invalid' });
    }
    expect((await good).map((e) => e.seq)).toEqual([1]);
    expect(store.lastSeq()).toBe(1);
    expect(store.healthy()).toBe(true);
  });

  it('stores times in UTC with milliseconds and only the principal reference', async () => {
    const store = openStore();
    const principal: Principal = {
      issuer: 'https://idp.example.com',
      subject: 'alice',
      kind: 'person',
      groups: ['dba'],
      claims: { email: 'alice@example.com' },
      expiresAt: 1,
    };
    const [e] = await store.append([statementEvent(0, { time: '2025-03-01T12:00:00+02:00', principal })]);
    expect(e.time).toBe('2025-03-01T10:00:00.000Z');
    expect(e.principal).toEqual({ issuer: 'https://idp.example.com', subject: 'alice', kind: 'person' });
    expect(all(store)).toEqual([e]);
    expect(JSON.stringify(all(store))).not.toContain('alice@example.com');
  });

  it('flushes pending appends on close and refuses appends after it', async () => {
    const path = join(dir, 'audit.db');
    const store = SqliteAuditStore.open({ path, synchronous: 'full' });
    const pending = store.append([statementEvent(0)]);
    await store.close();
    expect((await pending)[0].seq).toBe(1);
    expect(store.healthy()).toBe(false);
    await expect(store.append([statementEvent(1)])).rejects.toMatchObject({ code: 'store_closed' });
    expect(() => store.query({})).toThrow(expect.objectContaining({ code: 'store_closed' }));
    await store.close();
    expect(openStore({ path }).lastSeq()).toBe(1);
  });

  it('round-trips arbitrary JSON data so that the stored chain verifies (fuzzed)', async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.array(fc.dictionary(fc.string(), fc.jsonValue({ maxDepth: 3 })), { minLength: 1, maxLength: 4 }), {
          minLength: 1,
          maxLength: 6,
        }),
        async (batches) => {
          const path = join(dir, `fuzz-${run++}.db`);
          const store = SqliteAuditStore.open({ path, synchronous: 'normal' });
          const returned = (
            await Promise.all(batches.map((datas, b) => store.append(datas.map((data) => statementEvent(b, { data })))))
          ).flat();
          await store.close();
          const reopened = SqliteAuditStore.open({ path, synchronous: 'normal' });
          const stored = all(reopened);
          await reopened.close();
          expect(stored.map((e) => e.seq)).toEqual(returned.map((e) => e.seq));
          expect(stored.map((e) => canonicalJson(e.data))).toEqual(returned.map((e) => canonicalJson(e.data)));
          expect(stored.map((e) => e.hash)).toEqual(returned.map((e) => e.hash));
          expect(verifyChain(stored).ok).toBe(true);
        },
      ),
      { numRuns: 40 },
    );
  });
});

describe('SqliteAuditStore append-only table', () => {
  it('refuses UPDATE, DELETE and out-of-place INSERT from any connection', async () => {
    const path = join(dir, 'audit.db');
    const store = openStore({ path });
    const events = await store.append(range(3).map((i) => statementEvent(i)));
    const raw = new Database(path);
    try {
      expect(() => raw.prepare("UPDATE audit_events SET data = '{}' WHERE seq = 2").run()).toThrow(/append-only: UPDATE/);
      expect(() => raw.prepare('DELETE FROM audit_events WHERE seq = 3').run()).toThrow(/append-only: DELETE/);
      expect(() => raw.prepare('DELETE FROM audit_events').run()).toThrow(/append-only/);
      const insert = raw.prepare(
        "INSERT OR REPLACE INTO audit_events (chain, seq, type, time, data, prev_hash, hash) VALUES ('main', ?, 't', 'x', '{}', ?, 'h')",
      );
      expect(() => insert.run(2, events[0].hash)).toThrow(/append-only/);
      expect(() => insert.run(5, events[2].hash)).toThrow(/append-only/);
      expect(() => insert.run(4, GENESIS_HASH)).toThrow(/append-only/);
    } finally {
      raw.close();
    }
    expect(all(store)).toEqual(events);
    expect(verifyChain(all(store)).ok).toBe(true);
  });

  it('lets verifyChain find an edited, a deleted and a reordered event in a tampered copy', async () => {
    const store = openStore();
    await store.append(range(10).map((i) => statementEvent(i)));

    const tampered = async (name: string, sql: string): Promise<ReturnType<typeof verifyChain>> => {
      const copy = join(dir, `${name}.db`);
      await store.backup(copy);
      const raw = new Database(copy);
      raw.exec('DROP TRIGGER audit_events_no_update; DROP TRIGGER audit_events_no_delete;');
      raw.exec(sql);
      raw.close();
      const reader = openStore({ path: copy });
      return verifyChain(reader.query({ limit: 1000 }));
    };

    expect(await tampered('edited', `UPDATE audit_events SET data = json_set(data, '$.sql', 'SELECT 1') WHERE seq = 5`)).toMatchObject({
      ok: false,
      seq: 5,
      reason: 'hash_mismatch',
    });
    expect(await tampered('deleted', 'DELETE FROM audit_events WHERE seq = 7')).toMatchObject({
      ok: false,
      seq: 7,
      reason: 'missing',
    });
    expect(
      await tampered(
        'reordered',
        'UPDATE audit_events SET seq = seq + 1000 WHERE seq IN (3, 4); UPDATE audit_events SET seq = CASE seq WHEN 1003 THEN 4 ELSE 3 END WHERE seq > 1000;',
      ),
    ).toMatchObject({ ok: false, seq: 3 });
    expect(await tampered('untouched', 'SELECT 1')).toMatchObject({ ok: true, lastSeq: 10 });
  });
});

describe('SqliteAuditStore failures', () => {
  it('rejects every caller of a batch when another connection holds the write lock, then recovers with no gap', async () => {
    const path = join(dir, 'audit.db');
    const store = openStore({ path, busyTimeoutMs: 20 });
    await store.append([statementEvent(0)]);
    expect(store.healthy()).toBe(true);

    const locker = new Database(path);
    locker.exec('BEGIN EXCLUSIVE');
    const batch = range(3).map((i) => store.append([statementEvent(i + 1)]));
    for (const p of batch) {
      const err = await p.then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(StoreError);
      expect(err).toMatchObject({ code: 'store_write_failed' });
      expect((err as Error).message).toMatch(/^the audit store could not write \(SQLITE_BUSY.*\); the statement was not run\. Check disk space and permissions of /);
      expect((err as Error).message).toContain(path);
    }
    expect(store.healthy()).toBe(false);
    expect(store.lastSeq()).toBe(1);
    expect(store.stats()).toMatchObject({ failedCommits: 1, commits: 1 });

    locker.exec('ROLLBACK');
    locker.close();
    const [next] = await store.append([statementEvent(9)]);
    expect(next.seq).toBe(2);
    expect(store.healthy()).toBe(true);
    expect(verifyChain(all(store))).toMatchObject({ ok: true, lastSeq: 2 });
  });
});

describe('SqliteAuditStore backup', () => {
  it('produces a private, readable copy with the same events while appends continue', async () => {
    const store = openStore();
    await store.append(range(500).map((i) => statementEvent(i)));
    const dest = join(dir, 'backups', 'audit-copy.db');
    const during = store.append([statementEvent(500)]);
    await store.backup(dest);
    await during;
    expect(statSync(dest).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'backups')).mode & 0o777).toBe(0o700);

    const copy = openStore({ path: dest });
    const copied = copy.query({ limit: 1000 });
    expect(copied.length).toBeGreaterThanOrEqual(500);
    expect(copied).toEqual(store.query({ limit: copied.length }));
    expect(verifyChain(copied)).toMatchObject({ ok: true });
  });

  it('reports a destination it cannot write', async () => {
    const store = openStore();
    await store.append([statementEvent(0)]);
    await expect(store.backup(join(dir, 'audit.db', 'inside-a-file.db'))).rejects.toMatchObject({ code: 'store_backup_failed' });
  });
});

describe('SqliteAuditStore query', () => {
  let store: SqliteAuditStore;
  let events: AuditEvent[];
  const inputs: AuditEventInput[] = range(30).map((i) =>
    statementEvent(i, {
      type: i % 5 === 0 ? 'session.opened' : i % 5 === 4 ? 'statement.completed' : 'statement.started',
      data:
        i === 7
          ? { sql: `SELECT "Name" FROM t WHERE note = 'it''s 100% done'`, reason: 'line\nbreak' }
          : { sql: `SELECT ${i} FROM t_${i}`, n: i },
    }),
  );

  beforeEach(async () => {
    store = openStore();
    events = await store.append(inputs);
  });

  it('pages forward with afterSeq and backward with beforeSeq', () => {
    const forward: AuditEvent[] = [];
    for (let page = store.query({ limit: 7 }); page.length > 0; page = store.query({ limit: 7, afterSeq: page[page.length - 1].seq })) {
      expect(page.length).toBeLessThanOrEqual(7);
      forward.push(...page);
    }
    expect(forward).toEqual(events);

    const backward: AuditEvent[] = [];
    for (
      let page = store.query({ limit: 7, order: 'desc' });
      page.length > 0;
      page = store.query({ limit: 7, order: 'desc', beforeSeq: page[page.length - 1].seq })
    ) {
      backward.push(...page);
    }
    expect(backward).toEqual([...events].reverse());
    expect(store.query({ afterSeq: 10, beforeSeq: 14 }).map((e) => e.seq)).toEqual([11, 12, 13]);
  });

  it('filters by type, session, subject and resource, alone and together', () => {
    const expectSeqs = (q: Parameters<SqliteAuditStore['query']>[0], pick: (e: AuditEvent) => boolean) =>
      expect(store.query(q).map((e) => e.seq)).toEqual(events.filter(pick).map((e) => e.seq));
    expectSeqs({ types: ['session.opened'] }, (e) => e.type === 'session.opened');
    expectSeqs({ types: ['session.opened', 'statement.completed'] }, (e) => e.type !== 'statement.started');
    expectSeqs({ types: [] }, () => true);
    expectSeqs({ sessionId: 'sess-1' }, (e) => e.sessionId === 'sess-1');
    expectSeqs({ subject: 'user-2' }, (e) => e.principal?.subject === 'user-2');
    expectSeqs({ resource: 'billing' }, (e) => e.resource === 'billing');
    expectSeqs(
      { resource: 'orders', subject: 'user-0', types: ['statement.started', 'session.opened'] },
      (e) => e.resource === 'orders' && e.principal?.subject === 'user-0' && e.type !== 'statement.completed',
    );
    expect(store.query({ sessionId: 'nobody' })).toEqual([]);
  });

  it('filters by time: since inclusive, until exclusive, in any offset', () => {
    const seqs = (q: Parameters<SqliteAuditStore['query']>[0]) => store.query(q).map((e) => e.seq);
    expect(seqs({ since: events[10].time, until: events[13].time })).toEqual([11, 12, 13]);
    expect(seqs({ since: '2025-01-01T02:00:25+02:00' })).toEqual([26, 27, 28, 29, 30]);
    expect(seqs({ until: '2025-01-01T00:00:02Z' })).toEqual([1, 2]);
    expect(() => store.query({ since: 'last tuesday' })).toThrow(expect.objectContaining({ code: 'audit_query_invalid' }));
  });

  it('matches text inside data as a literal, case-insensitive substring', () => {
    const seqs = (text: string) => store.query({ text }).map((e) => e.seq);
    expect(seqs('select 7 from')).toEqual([]);
    expect(seqs('FROM T_12')).toEqual([13]);
    expect(seqs('"Name"')).toEqual([8]);
    expect(seqs("it''s 100% done")).toEqual([8]);
    expect(seqs('100%')).toEqual([8]);
    expect(seqs('100_ done')).toEqual([]);
    expect(seqs('10%')).toEqual([]);
    expect(seqs('t_1')).toEqual([2, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]);
    expect(seqs('line\nbreak')).toEqual([8]);
    expect(seqs('')).toHaveLength(30);
  });

  it('returns 100 events by default and at most 1000', async () => {
    await store.append(range(1200).map((i) => statementEvent(i)));
    expect(store.query({})).toHaveLength(100);
    expect(store.query({ limit: 5000 })).toHaveLength(1000);
    expect(store.query({ limit: 0 })).toHaveLength(1);
    expect(store.query({ limit: 2.9 })).toHaveLength(2);
    expect(store.query({ order: 'desc', limit: 1 })[0].seq).toBe(1230);
  });
});
