import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { AuditEvent } from '../../src/events/types.js';
import { pgClient, psql } from '../support/clients.js';
import { startGateway, type TestGateway } from '../support/gateway.js';
import { testPostgres } from '../support/pg-env.js';

let t: TestGateway;
let token: string;
const open: pg.Client[] = [];

beforeAll(async () => {
  t = await startGateway();
  token = await t.token('alice', ['dba']);
  const ddl = await psql(t, t.url('ddl'), token, ['-c', 'create table clients_tx (id int primary key, note text)']);
  expect(ddl.stderr).toBe('');
  // GRANT needs grant admin; the test grants as the superuser.
  const env = testPostgres();
  const su = new pg.Client({ host: env.host, port: env.port, user: env.superuser.user, password: env.superuser.password, database: env.database });
  await su.connect();
  await su.query('grant select, insert, update, delete on clients_tx to sluice_writer, sluice_reader');
  await su.end();
});
// Sluice limits sessions per principal, so each test closes the clients it opened.
afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.end().catch(() => undefined)));
});
afterAll(async () => {
  await t?.stop();
});

async function connect(grant = 'read', opts: Partial<pg.ClientConfig> = {}): Promise<pg.Client> {
  const c = await pgClient(t, grant, token, opts);
  // A refused or dropped session must fail the test that caused it, not crash the worker.
  c.on('error', () => undefined);
  open.push(c);
  return c;
}

interface Audited {
  readonly started: AuditEvent;
  readonly completed: AuditEvent;
}

/** Statements whose started event carries `marker`, each with its completion, once all have completed. */
async function audited(marker: string, count = 1): Promise<Audited[]> {
  return vi.waitFor(
    () => {
      const started = t.gw.store.query({ types: ['statement.started'], text: marker, limit: 1000 });
      expect(started.length).toBe(count);
      return started.map((s) => ({ started: s, completed: completionOf(s) }));
    },
    { timeout: 10_000 },
  );
}

function completionOf(started: AuditEvent): AuditEvent {
  const done = t.gw.store
    .query({ types: ['statement.completed'], sessionId: started.sessionId, afterSeq: started.seq, limit: 1000 })
    .find((e) => e.data.statement === started.data.statement);
  expect(done, `statement.completed for statement ${String(started.data.statement)}`).toBeDefined();
  return done!;
}

/** Every statement event of one session after `afterSeq`, once the statement with id `lastStatement` completed. */
async function statementsOf(sessionId: string, afterSeq: number, lastStatement: number): Promise<AuditEvent[]> {
  return vi.waitFor(
    () => {
      const events = t.gw.store.query({ sessionId, afterSeq, types: ['statement.started', 'statement.completed'], limit: 1000 });
      expect(events.some((e) => e.type === 'statement.completed' && e.data.statement === lastStatement)).toBe(true);
      return events;
    },
    { timeout: 10_000 },
  );
}

/** The session of a client, found through a marked statement it runs. */
async function sessionOf(c: pg.Client): Promise<{ id: string; seq: number; statement: number }> {
  const marker = `session-of-${randomUUID()}`;
  await c.query(`select '${marker}'`);
  const [a] = await audited(marker);
  return { id: a.started.sessionId!, seq: a.completed.seq, statement: a.started.data.statement as number };
}

/**
 * Several statements in one extended-protocol unit (Parse/Bind/Execute each,
 * one Sync at the end), written through node-postgres's own connection. pg
 * sends a Sync after every query, so this is how drivers that batch (JDBC
 * batches, libpq pipeline mode) look on the wire.
 */
/** The part of node-postgres's internal Connection a custom submittable writes to. */
interface PgConnection {
  parse(m: { text: string; name: string }): void;
  bind(m: { portal: string; statement: string; values: unknown[] }): void;
  describe(m: { type: 'P' | 'S'; name: string }): void;
  execute(m: { portal: string; rows: number }): void;
  sync(): void;
  sendCopyFromChunk(chunk: Buffer): void;
  endCopyFrom(): void;
  sendCopyFail(message: string): void;
}

class Batch extends EventEmitter {
  readonly results: { command?: string; rows: number; empty?: boolean }[] = [];
  error?: Error & { code?: string };
  readonly done: Promise<void>;
  private settle!: () => void;
  private current = { rows: 0 };

  constructor(private readonly texts: readonly string[]) {
    super();
    this.done = new Promise((resolve) => (this.settle = resolve));
  }

  submit(connection: PgConnection): null {
    for (const text of this.texts) {
      connection.parse({ text, name: '' });
      connection.bind({ portal: '', statement: '', values: [] });
      connection.describe({ type: 'P', name: '' });
      connection.execute({ portal: '', rows: 0 });
    }
    connection.sync();
    return null;
  }

  handleRowDescription(): void {}
  handleDataRow(): void {
    this.current.rows++;
  }
  handleCommandComplete(msg: { text: string }): void {
    this.results.push({ command: msg.text, rows: this.current.rows });
    this.current = { rows: 0 };
  }
  handleEmptyQuery(): void {
    this.results.push({ rows: 0, empty: true });
  }
  handlePortalSuspended(): void {}
  handleCopyInResponse(_connection: PgConnection): void {}
  handleCopyData(): void {}
  // pg hands the error to the active query and forgets it, so the ReadyForQuery that follows never reaches us.
  handleError(err: Error): void {
    this.error = err;
    this.settle();
  }
  handleReadyForQuery(): void {
    this.settle();
  }
}

/**
 * COPY FROM STDIN over the extended protocol the way libpq does it
 * (PQexecParams): Parse/Bind/Describe/Execute/Sync, then the data, CopyDone
 * and another Sync. The backend ignores the first Sync while it is in
 * copy-in mode and answers only the second.
 */
class ExtendedCopyIn extends Batch {
  constructor(
    text: string,
    private readonly lines: readonly string[],
    private readonly fail = false,
  ) {
    super([text]);
  }

  override handleCopyInResponse(connection: PgConnection): void {
    if (this.fail) connection.sendCopyFail('client gave up');
    else {
      for (const line of this.lines) connection.sendCopyFromChunk(Buffer.from(`${line}\n`));
      connection.endCopyFrom();
    }
    connection.sync();
  }
}

async function runBatch(c: pg.Client, texts: readonly string[] | Batch): Promise<Batch> {
  const batch = texts instanceof Batch ? texts : new Batch(texts);
  c.query(batch as unknown as pg.QueryConfig);
  await batch.done;
  return batch;
}

describe('node-postgres through Sluice', () => {
  it('runs simple queries and records text, tag and row count', async () => {
    const c = await connect();
    const r = await c.query("select id, name from customers where id <= 3 order by id /* np-simple */");
    expect(r.rows).toEqual([
      { id: 1, name: 'customer 1' },
      { id: 2, name: 'customer 2' },
      { id: 3, name: 'customer 3' },
    ]);
    const [a] = await audited('np-simple');
    expect(a.started.data).toMatchObject({ protocol: 'simple', text: 'select id, name from customers where id <= 3 order by id /* np-simple */' });
    expect(a.started.data.params).toBeUndefined();
    expect(a.completed.data).toMatchObject({ tags: ['SELECT 3'], rows: 3 });
    expect(a.completed.data.sqlstate).toBeUndefined();
    const opened = t.gw.store.query({ types: ['session.opened'], sessionId: a.started.sessionId, limit: 1 })[0];
    expect(opened.data).toMatchObject({ grant: 'read', tls: true });
    expect(opened.principal).toMatchObject({ subject: 'alice' });
  });

  it('records the Parse text and Bind parameters of parameterized queries', async () => {
    const c = await connect();
    const r = await c.query('select $1::int + $2::int as sum, $3::text as note, $4::text as missing /* np-params */', [40, 2, "it's \"quoted\"", null]);
    expect(r.rows).toEqual([{ sum: 42, note: 'it\'s "quoted"', missing: null }]);
    const [a] = await audited('np-params');
    expect(a.started.data).toMatchObject({
      protocol: 'extended',
      text: 'select $1::int + $2::int as sum, $3::text as note, $4::text as missing /* np-params */',
      params: ['40', '2', "it's \"quoted\"", null],
    });
    expect(a.started.data.statementName).toBeUndefined();
    expect(a.completed.data).toMatchObject({ tags: ['SELECT 1'], rows: 1 });
  });

  it('runs a named prepared statement several times, parsing it once', async () => {
    const c = await connect();
    const text = 'select name from customers where id = $1 /* np-named */';
    const names: string[] = [];
    for (const id of [5, 6, 7]) {
      const r = await c.query({ name: 'customer-by-id', text, values: [id] });
      names.push(r.rows[0].name);
    }
    expect(names).toEqual(['customer 5', 'customer 6', 'customer 7']);
    const runs = await audited('np-named', 3);
    expect(runs.map((a) => a.started.data.params)).toEqual([['5'], ['6'], ['7']]);
    for (const a of runs) {
      expect(a.started.data).toMatchObject({ protocol: 'extended', text, statementName: 'customer-by-id' });
      expect(a.completed.data).toMatchObject({ tags: ['SELECT 1'], rows: 1 });
    }
    const ids = runs.map((a) => a.started.data.statement as number);
    expect(new Set(ids).size).toBe(3);
  });

  it('redacts bytea parameters, declared or sent as untyped binary', async () => {
    const c = await connect();
    const secret = Buffer.from('card 4111-1111-1111-1111');
    // node-postgres never declares parameter types: Parse says 0 (unspecified) and the Buffer goes as binary,
    // which Sluice treats as bytea when bytea is on the redaction list.
    const untyped = await c.query('select length($1::bytea) as n /* np-bytea-untyped */', [secret]);
    expect(untyped.rows).toEqual([{ n: secret.length }]);
    const [u] = await audited('np-bytea-untyped');
    expect(u.started.data.params).toEqual(['[redacted]']);

    // A driver that declares the type (JDBC's setBytes does) sends OID 17 in Parse; node-postgres does so only
    // through its `types` option, which doubles as the result type parsers.
    const declared = Object.assign([17], { getTypeParser: pg.types.getTypeParser });
    const typed = await c.query({ text: 'select length($1) as n, $2::text as label /* np-bytea-typed */', values: [secret, 'visible'], types: declared as never });
    expect(typed.rows).toEqual([{ n: secret.length, label: 'visible' }]);
    const [d] = await audited('np-bytea-typed');
    expect(d.started.data.params).toEqual(['[redacted]', 'visible']);
    const all = JSON.stringify(t.gw.store.query({ sessionId: d.started.sessionId, afterSeq: u.completed.seq, limit: 1000 }));
    expect(all).not.toContain(secret.toString('hex'));
  });

  it('completes a failed statement with its SQLSTATE and marks the rest of its unit skipped', async () => {
    const c = await connect();
    const batch = await runBatch(c, ["select 'first' /* np-batch-1 */", 'select 1/0 /* np-batch-2 */', "select 'third' /* np-batch-3 */"]);
    expect(batch.results).toEqual([{ command: 'SELECT 1', rows: 1 }]);
    expect(batch.error?.code).toBe('22012');
    expect(batch.error?.message).toBe('division by zero');
    const [first] = await audited('np-batch-1');
    const [second] = await audited('np-batch-2');
    const [third] = await audited('np-batch-3');
    expect(first.completed.data).toMatchObject({ tags: ['SELECT 1'], rows: 1 });
    expect(first.completed.data.skipped).toBeUndefined();
    expect(second.completed.data).toMatchObject({ tags: [], rows: null, sqlstate: '22012', error: 'division by zero' });
    expect(second.completed.data.skipped).toBeUndefined();
    expect(third.completed.data).toMatchObject({ tags: [], rows: null, skipped: true });
    expect(third.completed.data.sqlstate).toBeUndefined();
    // The session goes on: the next unit runs normally.
    expect((await c.query("select 'after' as v")).rows).toEqual([{ v: 'after' }]);
  });

  it('keeps pipelined queries in order when one in the middle fails', async () => {
    const c = await connect('read', { pipeline: true });
    const results = await Promise.allSettled([
      c.query('select $1::int as v /* np-pipe-1 */', [1]),
      c.query('select $1::int / 0 as v /* np-pipe-2 */', [2]),
      c.query('select $1::int as v /* np-pipe-3 */', [3]),
      c.query("select 'simple' as v /* np-pipe-4 */"),
    ]);
    expect(results.map((r) => (r.status === 'fulfilled' ? r.value.rows[0].v : (r.reason as { code: string }).code))).toEqual([1, '22012', 3, 'simple']);
    const audits = await Promise.all([1, 2, 3, 4].map(async (i) => (await audited(`np-pipe-${i}`))[0]));
    expect(audits.map((a) => a.completed.data.sqlstate ?? null)).toEqual([null, '22012', null, null]);
    expect(audits.map((a) => a.completed.data.tags)).toEqual([['SELECT 1'], [], ['SELECT 1'], ['SELECT 1']]);
    // Each pg query has its own Sync, so a failure skips nothing after it.
    expect(audits.some((a) => a.completed.data.skipped)).toBe(false);
    const seqs = audits.map((a) => a.started.data.statement as number);
    expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
  });

  it('commits and rolls back transactions, and reports statements in a failed transaction', async () => {
    const c = await connect('write');
    await c.query('begin /* np-tx-1 */');
    await c.query("insert into clients_tx values (1, 'rolled back') /* np-tx-insert-1 */");
    await c.query('rollback /* np-tx-2 */');
    await c.query('begin /* np-tx-3 */');
    await c.query('insert into clients_tx values ($1, $2) /* np-tx-insert-2 */', [2, 'committed']);
    await c.query('commit /* np-tx-4 */');
    expect((await c.query('select id, note from clients_tx order by id')).rows).toEqual([{ id: 2, note: 'committed' }]);

    await c.query('begin /* np-tx-5 */');
    await expect(c.query('insert into clients_tx values (2, $1) /* np-tx-dup */', ['duplicate'])).rejects.toMatchObject({ code: '23505' });
    await expect(c.query('select 1 /* np-tx-aborted */')).rejects.toMatchObject({ code: '25P02' });
    await c.query('rollback /* np-tx-6 */');

    const tags = await Promise.all([1, 2, 3, 4, 5, 6].map(async (i) => (await audited(`np-tx-${i}`))[0].completed.data.tags));
    expect(tags).toEqual([['BEGIN'], ['ROLLBACK'], ['BEGIN'], ['COMMIT'], ['BEGIN'], ['ROLLBACK']]);
    const [ins1] = await audited('np-tx-insert-1');
    const [ins2] = await audited('np-tx-insert-2');
    expect(ins1.completed.data).toMatchObject({ tags: ['INSERT 0 1'], rows: 1 });
    expect(ins2.started.data).toMatchObject({ protocol: 'extended', params: ['2', 'committed'] });
    const [dup] = await audited('np-tx-dup');
    expect(dup.completed.data).toMatchObject({ sqlstate: '23505', tags: [] });
    const [aborted] = await audited('np-tx-aborted');
    expect(aborted.completed.data).toMatchObject({ sqlstate: '25P02' });
  });

  it('delivers NOTIFY from one Sluice session to a LISTEN on another', async () => {
    const listener = await connect();
    const notifier = await connect();
    const channel = `clients_${randomUUID().replace(/-/g, '')}`;
    await listener.query(`listen ${channel} /* np-listen */`);
    const received = new Promise<pg.Notification>((resolve) => listener.on('notification', resolve));
    await notifier.query('select pg_notify($1, $2) /* np-notify */', [channel, 'order 42 shipped']);
    const n = await received;
    expect(n).toMatchObject({ channel, payload: 'order 42 shipped' });
    const [l] = await audited('np-listen');
    const [s] = await audited('np-notify');
    expect(l.completed.data.tags).toEqual(['LISTEN']);
    expect(s.started.data.params).toEqual([channel, 'order 42 shipped']);
    expect(s.started.sessionId).not.toBe(l.started.sessionId);
    // The asynchronous message in between does not confuse the listener's statement tracking.
    expect((await listener.query("select 'still in step' as v /* np-after-notify */")).rows).toEqual([{ v: 'still in step' }]);
    const [after] = await audited('np-after-notify');
    expect(after.completed.data).toMatchObject({ tags: ['SELECT 1'], rows: 1 });
  });

  it('passes notices through to the client', async () => {
    const c = await connect('ddl');
    const notices: string[] = [];
    c.on('notice', (n) => notices.push(n.message ?? ''));
    await c.query('drop table if exists np_notice_missing /* np-notice */');
    expect(notices).toEqual(['table "np_notice_missing" does not exist, skipping']);
    const [a] = await audited('np-notice');
    expect(a.completed.data).toMatchObject({ tags: ['DROP TABLE'], rows: null });
  });

  it('streams a large result with the right row count', async () => {
    const c = await connect();
    const r = await c.query('select g, md5(g::text) as h from generate_series(1, 200000) g /* np-large */');
    expect(r.rowCount).toBe(200_000);
    expect(r.rows[199_999]).toEqual({ g: 200_000, h: expect.stringMatching(/^[0-9a-f]{32}$/) });
    const [a] = await audited('np-large');
    expect(a.completed.data).toMatchObject({ tags: ['SELECT 200000'], rows: 200_000 });
  });

  it('fetches a portal in pages (Execute with maxRows) and records each page', async () => {
    const c = await connect();
    const q = new pg.Query({ text: 'select g from generate_series(1, 25) g /* np-pages */', rows: 10 } as pg.QueryConfig);
    const rows: number[] = [];
    q.on('row', (row: { g: number }) => rows.push(row.g));
    await new Promise<void>((resolve, reject) => {
      q.on('end', () => resolve());
      q.on('error', reject);
      c.query(q);
    });
    expect(rows).toEqual(Array.from({ length: 25 }, (_, i) => i + 1));
    const pages = await audited('np-pages', 3);
    expect(pages.map((p) => [p.completed.data.tags, p.completed.data.rows, p.completed.data.suspended ?? false])).toEqual([
      [[], 10, true],
      [[], 10, true],
      [['SELECT 5'], 5, false],
    ]);
  });

  it('records a long-running query as started until it ends', async () => {
    const c = await connect();
    const running = c.query("select pg_sleep(2), 'slept' as v /* np-long */");
    const started = await vi.waitFor(
      () => {
        const s = t.gw.store.query({ types: ['statement.started'], text: 'np-long', limit: 1 });
        expect(s).toHaveLength(1);
        return s[0];
      },
      { timeout: 10_000 },
    );
    const whileRunning = t.gw.store.query({ types: ['statement.completed'], sessionId: started.sessionId, afterSeq: started.seq, limit: 10 });
    expect(whileRunning).toEqual([]);
    expect((await running).rows[0].v).toBe('slept');
    const [a] = await audited('np-long');
    expect(a.completed.data).toMatchObject({ tags: ['SELECT 1'], rows: 1 });

    await c.query("set statement_timeout = '200ms'");
    await expect(c.query('select pg_sleep(30) /* np-timeout */')).rejects.toMatchObject({ code: '57014' });
    const [timedOut] = await audited('np-timeout');
    expect(timedOut.completed.data).toMatchObject({ sqlstate: '57014', error: 'canceling statement due to statement timeout' });
  });

  it('records empty queries, simple and extended', async () => {
    const c = await connect();
    const session = await sessionOf(c);
    const simple = await c.query('');
    expect(simple.rows).toEqual([]);
    const extended = await c.query({ text: '', queryMode: 'extended' } as pg.QueryConfig);
    expect(extended.rows).toEqual([]);
    const events = await statementsOf(session.id, session.seq, session.statement + 2);
    const started = events.filter((e) => e.type === 'statement.started');
    const completed = events.filter((e) => e.type === 'statement.completed');
    expect(started.map((e) => [e.data.protocol, e.data.text])).toEqual([
      ['simple', ''],
      ['extended', ''],
    ]);
    expect(completed.map((e) => [e.data.tags, e.data.rows, e.data.sqlstate ?? null])).toEqual([
      [[], null, null],
      [[], null, null],
    ]);
  });

  it('copies in over the extended protocol and stays in step with the backend', async () => {
    const c = await connect('write');
    const ok = await runBatch(c, new ExtendedCopyIn('copy clients_tx (id, note) from stdin /* np-copy-in */', ['100\tcopied a', '101\tcopied b']));
    expect(ok.error).toBeUndefined();
    expect(ok.results).toEqual([{ command: 'COPY 2', rows: 0 }]);
    // pg's Query waits for ReadyForQuery; a dangling unit in Sluice would make this statement's audit wrong.
    expect((await c.query("select count(*)::int as n from clients_tx where note like 'copied%' /* np-copy-then-ok */")).rows).toEqual([{ n: 2 }]);
    const failed = await runBatch(c, new ExtendedCopyIn('copy clients_tx (id, note) from stdin /* np-copy-fail */', [], true));
    expect(failed.error?.code).toBe('57014');
    expect((await c.query("select 'in step' as v /* np-copy-then-fail-ok */")).rows).toEqual([{ v: 'in step' }]);

    const [copy] = await audited('np-copy-in');
    expect(copy.completed.data).toMatchObject({ tags: ['COPY 2'], rows: 2 });
    const [after] = await audited('np-copy-then-ok');
    expect(after.completed.data).toMatchObject({ tags: ['SELECT 1'], rows: 1 });
    const [fail] = await audited('np-copy-fail');
    expect(fail.completed.data).toMatchObject({ sqlstate: '57014' });
    const [afterFail] = await audited('np-copy-then-fail-ok');
    expect(afterFail.completed.data).toMatchObject({ tags: ['SELECT 1'], rows: 1 });
  });

  it('records a multi-statement simple query as one statement with every tag', async () => {
    const c = await connect();
    const r = (await c.query('select 1 as a; select g from generate_series(1, 3) g; /* np-multi-ok */')) as unknown as pg.QueryResult[];
    expect(r.map((x) => x.rowCount)).toEqual([1, 3]);
    const [a] = await audited('np-multi-ok');
    expect(a.started.data).toMatchObject({ protocol: 'simple', text: 'select 1 as a; select g from generate_series(1, 3) g; /* np-multi-ok */' });
    expect(a.completed.data).toMatchObject({ tags: ['SELECT 1', 'SELECT 3'], rows: 4 });

    await expect(c.query('select 1; select 1/0; select 3 /* np-multi-error */')).rejects.toMatchObject({ code: '22012' });
    const [e] = await audited('np-multi-error');
    expect(e.completed.data).toMatchObject({ tags: ['SELECT 1'], rows: 1, sqlstate: '22012' });
  });
});
