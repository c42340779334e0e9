import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { serialize } from 'pg-protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApprovalStatus } from '../../src/approvals/types.js';
import type { Principal } from '../../src/identity/principal.js';
import { cancelRequest } from '../../src/protocols/postgres/codec/frontend-serializer.js';
import { pgClient } from '../support/clients.js';
import { startGateway, type TestGateway } from '../support/gateway.js';
import { CLOSED, errorFields, openSession, RawClient, type BackendMessage, type Session } from '../support/raw-client.js';
import { HeldStatements, migratorClient, sleep, sqlError } from './fixture.js';

/**
 * Adversarial probes of held statements (issue 6): what an attacker or an
 * unusual client does around a statement that waits for a decision, counts
 * its rows in a savepoint, or re-runs after a fail-fast approval. Every case
 * asserts what the user must see: the statement runs once and only when
 * approved, nothing of a refused message runs, no secret reaches approvers,
 * and the session stays usable and in step with the backend.
 */

let t: TestGateway;
let admin: pg.Client;
let alice: string;
let ci: string;
let bob: Principal;
let held: HeldStatements;

beforeAll(async () => {
  t = await startGateway((c) => {
    const upstream = c.resources[0];
    c.resources.push({ ...upstream, name: 'orders2' });
    const approvers = [{ groups: ['dba'] }];
    c.policies.push(
      { name: 'ops', when: { groups: ['ops'] }, resources: ['orders', 'orders2'], grants: ['read', 'write', 'ddl'] },
      { name: 'ci', when: { kind: 'machine', groups: ['ci'] }, resources: ['orders', 'orders2'], grants: ['read', 'write', 'ddl'] },
      { name: 'hold-drops', when: { groups: ['ops'] }, resources: ['orders'], approval: { statements: { kinds: ['ddl.drop'] }, approvers, request_ttl: '2m' } },
      { name: 'big-deletes', when: { groups: ['ops'] }, resources: ['orders'], approval: { statements: { kinds: ['delete', 'update', 'merge'] }, rows_over: 3, approvers, request_ttl: '2m' } },
      { name: 'hold-loads', when: { groups: ['loader'] }, resources: ['orders'], approval: { statements: { kinds: ['copy.in'] }, approvers, request_ttl: '2m' } },
      { name: 'hold-mappings', when: { groups: ['fdw'] }, resources: ['orders'], approval: { statements: { kinds: ['ddl.create', 'ddl.alter'] }, approvers, request_ttl: '2m' } },
      {
        name: 'ci-holds',
        when: { kind: 'machine', groups: ['ci'] },
        resources: ['orders', 'orders2'],
        approval: { statements: { kinds: ['delete', 'ddl.drop'] }, mode: 'fail_fast', approvers, approval_ttl: '10m', request_ttl: '10m' },
      },
      {
        name: 'ci-short',
        when: { kind: 'machine', groups: ['ci-short'] },
        resources: ['orders'],
        approval: { statements: { kinds: ['delete'] }, mode: 'fail_fast', approvers, approval_ttl: 1, request_ttl: '10m' },
      },
      { name: 'ci-short-grant', when: { kind: 'machine', groups: ['ci-short'] }, resources: ['orders'], grants: ['read', 'write'] },
    );
  });
  admin = await migratorClient(t);
  alice = await t.token('alice', ['ops']);
  ci = await t.token('deploy-pipeline', ['ci'], { kind: 'machine' });
  bob = await t.gw.state().authenticator.authenticate(await t.token('bob', ['dba']));
  held = new HeldStatements(t, admin, bob, 'prb');
});
afterAll(async () => {
  await admin?.end();
  await t?.stop();
});

const table = (rows?: number) => held.table(rows);
const count = (name: string) => held.count(name);
const exists = (name: string) => held.exists(name);
const pendingFor = (needle: string) => held.requests(needle, 'pending');
const requestsFor = (needle: string) => held.requests(needle);
const pendingRequest = (needle: string) => held.pendingRequest(needle);

/**
 * For probes where a request must NOT be opened: waits a while for one, and
 * denies it if it shows up so the probe cannot hang. Returns what showed up.
 */
async function denyIfRequested(needle: string, waitMs = 2000): Promise<ApprovalStatus | undefined> {
  for (let waited = 0; waited < waitMs; waited += 50) {
    const found = pendingFor(needle);
    if (found.length > 0) {
      for (const s of found) await t.gw.approvals.decide(s.request.id, bob, 'deny', 'probe cleanup');
      return found[0];
    }
    await sleep(50);
  }
  return undefined;
}

const stateOf = async (id: string, want: ApprovalStatus['state']) => (await held.stateOf(id, want)).state;

function requestId(message: string): string {
  const m = /request (apr_[a-z2-7]{20})/.exec(message);
  if (!m) throw new Error(`no request id in: ${message}`);
  return m[1]!;
}

function open(grant: string, token: string, resource = 'orders'): Promise<Session> {
  return openSession(t.host, t.port, { user: grant, database: resource }, token);
}

async function withSession<T>(opening: Promise<Session>, body: (s: Session) => Promise<T>): Promise<T> {
  const s = await opening;
  try {
    return await body(s);
  } finally {
    s.client.destroy();
  }
}

/** Reads messages until `n` ReadyForQuery messages arrived. */
async function untilReady(s: Session, n = 1, timeoutMs = 20_000): Promise<BackendMessage[]> {
  const out: BackendMessage[] = [];
  let seen = 0;
  while (seen < n) {
    const m = await s.client.next(timeoutMs);
    if (m === CLOSED) throw new Error(`connection closed after ${out.map((x) => x.type).join('')}`);
    out.push(m);
    if (m.type === 'Z') seen++;
  }
  return out;
}

const types = (msgs: readonly BackendMessage[]) => msgs.map((m) => m.type).join('');
const tags = (msgs: readonly BackendMessage[]) => msgs.filter((m) => m.type === 'C').map((m) => m.payload.toString('utf8', 0, m.payload.length - 1));
const errors = (msgs: readonly BackendMessage[]) => msgs.filter((m) => m.type === 'E').map((m) => errorFields(m));
const statuses = (msgs: readonly BackendMessage[]) => msgs.filter((m) => m.type === 'Z').map((m) => String.fromCharCode(m.payload[0]!));

async function expectUsable(s: Session): Promise<void> {
  s.client.write(serialize.query('SELECT 41 + 1 AS ok'));
  const got = await untilReady(s);
  expect(types(got)).toBe('TDCZ');
  expect(statuses(got)).toEqual(['I']);
}

/** A Bind whose parameters all share one format (0 text, 1 binary). */
function bind(portal: string, statement: string, values: (Buffer | null)[], format: 0 | 1): Buffer {
  const i16 = (n: number) => Buffer.from([(n >> 8) & 0xff, n & 0xff]);
  const parts: Buffer[] = [Buffer.from(`${portal}\0${statement}\0`, 'utf8'), i16(1), i16(format), i16(values.length)];
  for (const v of values) {
    const len = Buffer.alloc(4);
    len.writeInt32BE(v === null ? -1 : v.length);
    parts.push(len, ...(v === null ? [] : [v]));
  }
  parts.push(i16(0));
  const body = Buffer.concat(parts);
  const head = Buffer.alloc(5);
  head.write('B', 0, 'latin1');
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}

describe('extended protocol', () => {
  it('two held Executes in one write: the approved one runs, the denied one fails, skips to Sync and rolls back the batch', async () => {
    const name = await table(10);
    await withSession(open('write', alice), async (s) => {
      s.client.write(
        Buffer.concat([
          serialize.parse({ name: 'del', text: `DELETE FROM ${name} WHERE id > $1`, types: [] }),
          serialize.bind({ portal: 'p1', statement: 'del', values: ['8'] }),
          serialize.execute({ portal: 'p1' }),
          serialize.bind({ portal: 'p2', statement: 'del', values: ['5'] }),
          serialize.execute({ portal: 'p2' }),
          serialize.execute({ portal: 'p2' }),
          serialize.sync(),
        ]),
      );
      const first = await pendingRequest(name);
      expect(first.request.statement!.params).toEqual(['8']);
      expect(first.request.statement!.rows).toBeUndefined();
      expect(await count(name)).toBe(10);
      await t.gw.approvals.decide(first.request.id, bob, 'approve', 'two rows');
      const second = await pendingRequest(name);
      expect(second.request.id).not.toBe(first.request.id);
      expect(second.request.statement!.params).toEqual(['5']);
      // The first DELETE ran, inside the batch's implicit transaction: not committed before the Sync.
      expect(await count(name)).toBe(10);
      await t.gw.approvals.decide(second.request.id, bob, 'deny', 'too many');
      const got = await untilReady(s);
      expect(tags(got)).toEqual(['DELETE 2']);
      expect(errors(got).map((e) => e.C)).toEqual(['42501']);
      expect(errors(got)[0]!.M).toContain('denied by bob: too many');
      expect(statuses(got)).toEqual(['I']);
      // The third Execute was skipped by the backend, not held again.
      expect(pendingFor(name)).toHaveLength(0);
      // The refusal aborted the implicit transaction, so the approved DELETE was rolled back with it.
      expect(await count(name)).toBe(10);
      await expectUsable(s);
    });
  });

  it('a held Execute whose Parse arrived earlier with Flush runs once approved', async () => {
    const name = await table(1);
    await withSession(open('ddl', alice), async (s) => {
      s.client.write(Buffer.concat([serialize.parse({ name: 'dropper', text: `DROP TABLE ${name}`, types: [] }), serialize.flush()]));
      const parsed = await s.client.next();
      expect(parsed !== CLOSED && parsed.type).toBe('1');
      s.client.write(Buffer.concat([serialize.bind({ statement: 'dropper' }), serialize.execute({}), serialize.sync()]));
      const req = await pendingRequest(name);
      expect(await exists(name)).toBe(true);
      await t.gw.approvals.decide(req.request.id, bob, 'approve', 'ok');
      const got = await untilReady(s);
      expect(tags(got)).toEqual(['DROP TABLE']);
      expect(got.filter((m) => m.type === 'N').map((m) => errorFields(m).M)).toEqual([expect.stringContaining(req.request.id)]);
      expect(await exists(name)).toBe(false);
      await expectUsable(s);
    });
  });

  it('opens no request for an Execute whose Parse the guard denied in the same batch', async () => {
    const name = await table(1);
    await withSession(open('write', alice), async (s) => {
      s.client.write(Buffer.concat([serialize.parse({ text: `DROP TABLE ${name}` }), serialize.bind({}), serialize.execute({}), serialize.sync()]));
      const got = await untilReady(s);
      expect(errors(got).map((e) => e.C)).toEqual(['42501']);
      expect(errors(got)[0]!.M).toContain('needs grant ddl');
      expect(await denyIfRequested(name, 500)).toBeUndefined();
      expect(await exists(name)).toBe(true);
      await expectUsable(s);
    });
  });

  it('opens no request for a named statement the guard denied, executed in a later batch', async () => {
    const name = await table(1);
    await withSession(open('write', alice), async (s) => {
      s.client.write(Buffer.concat([serialize.parse({ name: 'dropper', text: `DROP TABLE ${name}` }), serialize.sync()]));
      const refused = await untilReady(s);
      expect(errors(refused).map((e) => e.C)).toEqual(['42501']);
      // The backend never prepared "dropper": this can only fail, and nobody should be asked to approve it.
      s.client.write(Buffer.concat([serialize.bind({ statement: 'dropper' }), serialize.execute({}), serialize.sync()]));
      const asked = await denyIfRequested(name);
      const got = await untilReady(s);
      expect(asked).toBeUndefined();
      expect(errors(got).map((e) => e.C)).toEqual(['26000']);
      expect(await exists(name)).toBe(true);
    });
  });

  it('asks once for one statement: continuing a suspended portal (maxRows) and Describe do not open another request', async () => {
    const name = await table(6);
    await withSession(open('write', alice), async (s) => {
      s.client.write(
        Buffer.concat([
          serialize.parse({ text: `DELETE FROM ${name} WHERE id > $1 RETURNING id`, types: [] }),
          serialize.bind({ portal: 'cur', values: ['0'] }),
          serialize.execute({ portal: 'cur', rows: 2 }),
          serialize.describe({ type: 'P', name: 'cur' }),
          serialize.execute({ portal: 'cur', rows: 0 }),
          serialize.sync(),
        ]),
      );
      const req = await pendingRequest(name);
      expect(await count(name)).toBe(6);
      await t.gw.approvals.decide(req.request.id, bob, 'approve', 'all six');
      const again = await denyIfRequested(name, 2500);
      const got = await untilReady(s);
      expect(again).toBeUndefined();
      expect(got.filter((m) => m.type === 'D')).toHaveLength(6);
      expect(got.some((m) => m.type === 's')).toBe(true);
      // PostgreSQL's tag for a continued portal counts the rows of that Execute only.
      expect(tags(got)).toEqual(['DELETE 4']);
      expect(await count(name)).toBe(0);
    });
  });

  it('holds a DELETE prepared with SQL PREPARE and run through a protocol-level Bind of that name', async () => {
    const name = await table(10);
    await withSession(open('write', alice), async (s) => {
      // Under big-deletes, the PREPARE itself changes no rows, so it runs at once.
      const zap = `zap_${name}`;
      s.client.write(serialize.query(`PREPARE ${zap} AS DELETE FROM ${name}`));
      const prepared = await untilReady(s);
      expect(tags(prepared)).toEqual(['PREPARE']);
      s.client.write(Buffer.concat([serialize.bind({ statement: zap }), serialize.execute({}), serialize.sync()]));
      await denyIfRequested(name);
      const got = await untilReady(s);
      expect(tags(got)).not.toContain('DELETE 10');
      expect(await count(name)).toBe(10);
    });
  });

  it('holds a DELETE prepared with SQL PREPARE and run as EXECUTE sent with the extended protocol', async () => {
    const name = await table(10);
    await withSession(open('write', alice), async (s) => {
      // The prepared name carries the table name so that the request text ("EXECUTE ...") can be found.
      const zap = `zap_${name}`;
      s.client.write(serialize.query(`PREPARE ${zap} AS DELETE FROM ${name}`));
      await untilReady(s);
      // Control: the same EXECUTE as a simple Query is counted and held.
      s.client.write(serialize.query(`EXECUTE ${zap}`));
      const counted = await denyIfRequested(name);
      expect(counted?.request.statement!.rows).toBe(10);
      expect(errors(await untilReady(s)).map((e) => e.C)).toEqual(['42501']);
      s.client.write(Buffer.concat([serialize.parse({ text: `EXECUTE ${zap}` }), serialize.bind({}), serialize.execute({}), serialize.sync()]));
      await denyIfRequested(name);
      await untilReady(s);
      expect(await count(name)).toBe(10);
      // Approvers of the simple EXECUTE saw what it runs, not only "EXECUTE name".
      expect(counted?.request.statement!.facts.kinds).toContain('delete');
      expect(counted?.request.statement!.facts.tables).toContain(name);
    });
  });
});

describe('simple protocol', () => {
  it('holds a whole multi-statement Query without a count; denied, nothing of it ran', async () => {
    const name = await table(10);
    const c = await pgClient(t, 'write', alice);
    try {
      const failed = sqlError(c.query(`INSERT INTO ${name} VALUES (100, 'new'); DELETE FROM ${name} WHERE id > 3`));
      const req = await pendingRequest(name);
      expect(req.request.statement!.rows).toBeUndefined();
      expect(await count(name)).toBe(10);
      await t.gw.approvals.decide(req.request.id, bob, 'deny', 'no');
      expect((await failed).code).toBe('42501');
      expect(await count(name)).toBe(10);
      expect((await admin.query(`SELECT 1 FROM ${name} WHERE id = 100`)).rowCount).toBe(0);
      expect((await c.query('SELECT 1 AS ok')).rows).toEqual([{ ok: 1 }]);
    } finally {
      await c.end();
    }
  });

  it('holds "DELETE ...; COMMIT" without counting it, so the COMMIT cannot escape the savepoint', async () => {
    const name = await table(10);
    const c = await pgClient(t, 'write', alice);
    try {
      const run = c.query(`DELETE FROM ${name} WHERE id > 3; COMMIT`);
      const req = await pendingRequest(name);
      expect(req.request.statement!.rows).toBeUndefined();
      expect(await count(name)).toBe(10);
      await t.gw.approvals.decide(req.request.id, bob, 'approve', 'ok');
      await run;
      expect(await count(name)).toBe(3);
    } finally {
      await c.end();
    }
  });

  it('a held DROP inside BEGIN with COMMIT pipelined behind it: denied, the block aborts and COMMIT rolls back', async () => {
    const name = await table(1);
    await withSession(open('ddl', alice), async (s) => {
      s.client.write(Buffer.concat([serialize.query('BEGIN'), serialize.query(`DROP TABLE ${name}`), serialize.query('COMMIT')]));
      const req = await pendingRequest(name);
      await t.gw.approvals.decide(req.request.id, bob, 'deny', 'not now');
      const got = await untilReady(s, 3);
      expect(tags(got)).toEqual(['BEGIN', 'ROLLBACK']);
      expect(errors(got).map((e) => e.C)).toEqual(['42501']);
      expect(statuses(got)).toEqual(['T', 'E', 'I']);
      expect(await exists(name)).toBe(true);
      await expectUsable(s);
    });
  });

  it('writes the hold notice between messages, never inside the result still streaming before it', async () => {
    const name = await table(1);
    await withSession(open('ddl', alice), async (s) => {
      // Rows large enough to be flushed one by one; the first comes at once, the rest slowly: the hold starts while they stream.
      const slow = `SELECT g, repeat('x', 20000), CASE WHEN g > 1 THEN pg_sleep(0.1) END FROM generate_series(1, 15) g`;
      s.client.write(Buffer.concat([serialize.query(slow), serialize.query(`DROP TABLE ${name}`)]));
      const req = await pendingRequest(name);
      await t.gw.approvals.decide(req.request.id, bob, 'approve', 'ok');
      const got = await untilReady(s, 2);
      const seq = types(got);
      expect(seq.match(/D/g)).toHaveLength(15);
      expect(seq.match(/N/g)).toHaveLength(1);
      // Between the first result's RowDescription and its CommandComplete there is only data.
      expect(seq.slice(seq.indexOf('T'), seq.indexOf('C') + 1)).toMatch(/^TD+C$/);
      expect(tags(got)).toEqual(['SELECT 15', 'DROP TABLE']);
      expect(await exists(name)).toBe(false);
    });
  });

  it('counts a DELETE pipelined behind a streaming result only after that result is over', async () => {
    const name = await table(10);
    await withSession(open('write', alice), async (s) => {
      s.client.write(Buffer.concat([serialize.query(`SELECT g FROM generate_series(1, 20000) g`), serialize.query(`DELETE FROM ${name} WHERE id > 3`)]));
      const req = await pendingRequest(name);
      expect(req.request.statement!.rows).toBe(7);
      expect(await count(name)).toBe(10);
      await t.gw.approvals.decide(req.request.id, bob, 'deny', 'no');
      const got = await untilReady(s, 2);
      expect(got.filter((m) => m.type === 'D')).toHaveLength(20000);
      expect(tags(got)).toEqual(['SELECT 20000']);
      expect(errors(got).map((e) => e.C)).toEqual(['42501']);
      expect(statuses(got)).toEqual(['I', 'I']);
      expect(await count(name)).toBe(10);
      await expectUsable(s);
    });
  });

  it('a client that sends Terminate and closes while held cancels the request; a later approval runs nothing', async () => {
    const name = await table(1);
    const s = await open('ddl', alice);
    s.client.write(serialize.query(`DROP TABLE ${name}`));
    const req = await pendingRequest(name);
    s.client.write(serialize.end());
    s.client.end();
    const state = await stateOf(req.request.id, 'cancelled');
    // An approver who comes by later must not be able to run the statement of a client that left.
    if (state === 'pending') await t.gw.approvals.decide(req.request.id, bob, 'approve', 'the client is gone');
    await sleep(500);
    const dropped = !(await exists(name));
    s.client.destroy();
    expect(dropped).toBe(false);
    expect(state).toBe('cancelled');
  });

  it('a CancelRequest while held ends the wait with 57014 and withdraws the request', async () => {
    const name = await table(1);
    await withSession(open('ddl', alice), async (s) => {
      s.client.write(serialize.query(`DROP TABLE ${name}`));
      const req = await pendingRequest(name);
      const canceller = await RawClient.connect(t.host, t.port);
      canceller.write(cancelRequest(s.key.pid, s.key.secret));
      const state = await stateOf(req.request.id, 'cancelled');
      if (state === 'pending') await t.gw.approvals.decide(req.request.id, bob, 'deny', 'cancel was ignored');
      canceller.destroy();
      const got = await untilReady(s);
      expect(state).toBe('cancelled');
      expect(errors(got).map((e) => e.C)).toEqual(['57014']);
      expect(await exists(name)).toBe(true);
      await expectUsable(s);
    });
  });

  it('holds COPY FROM STDIN; once approved the data flows', async () => {
    const name = await table(0);
    await withSession(open('write', await t.token('lena', ['ops', 'loader'])), async (s) => {
      s.client.write(serialize.query(`COPY ${name} (id, note) FROM STDIN`));
      const req = await pendingRequest(name);
      expect(req.request.rule).toBe('hold-loads');
      await t.gw.approvals.decide(req.request.id, bob, 'approve', 'load');
      const started = await s.client.until('G');
      expect(started.at(-1)?.type).toBe('G');
      s.client.write(Buffer.concat([serialize.copyData(Buffer.from('1\tone\n2\ttwo\n')), serialize.copyDone()]));
      const got = await untilReady(s);
      expect(tags(got)).toEqual(['COPY 2']);
      expect(await count(name)).toBe(2);
      await expectUsable(s);
    });
  });

  it('a denied COPY FROM STDIN whose data the client pipelined loads nothing and leaves the session in step', async () => {
    const name = await table(0);
    await withSession(open('write', await t.token('lena', ['ops', 'loader'])), async (s) => {
      s.client.write(Buffer.concat([serialize.query(`COPY ${name} (id, note) FROM STDIN`), serialize.copyData(Buffer.from('1\tone\n')), serialize.copyDone()]));
      const req = await pendingRequest(name);
      await t.gw.approvals.decide(req.request.id, bob, 'deny', 'no load');
      const got = await untilReady(s);
      expect(errors(got).map((e) => e.C)).toEqual(['42501']);
      expect(await count(name)).toBe(0);
      await expectUsable(s);
      // A later COPY is tracked normally: approved, it loads and completes.
      s.client.write(serialize.query(`COPY ${name} (id, note) FROM STDIN`));
      const next = await pendingRequest(name);
      await t.gw.approvals.decide(next.request.id, bob, 'approve', 'load');
      await s.client.until('G');
      s.client.write(Buffer.concat([serialize.copyData(Buffer.from('3\tthree\n')), serialize.copyDone()]));
      expect(tags(await untilReady(s))).toEqual(['COPY 1']);
      expect(await count(name)).toBe(1);
    });
  });
});

describe('row thresholds', () => {
  it('counts only the rows of the DELETE, not what its trigger writes, and leaves both tables unchanged while held', async () => {
    const name = await table(5);
    await admin.query(`CREATE TABLE ${name}_audit (id int)`);
    await admin.query(`CREATE FUNCTION ${name}_log() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO ${name}_audit VALUES (OLD.id); INSERT INTO ${name}_audit VALUES (OLD.id); RETURN OLD; END $$`);
    await admin.query(`CREATE TRIGGER log BEFORE DELETE ON ${name} FOR EACH ROW EXECUTE FUNCTION ${name}_log()`);
    await admin.query(`GRANT INSERT, SELECT ON ${name}_audit TO ${t.pg.roles.writer.user}`);
    const c = await pgClient(t, 'write', alice);
    try {
      const failed = sqlError(c.query(`DELETE FROM ${name} WHERE id > 1`));
      const req = await pendingRequest(name);
      expect(req.request.statement!.rows).toBe(4);
      expect(await count(name)).toBe(5);
      expect(await count(`${name}_audit`)).toBe(0);
      await t.gw.approvals.decide(req.request.id, bob, 'deny', 'no');
      expect((await failed).code).toBe('42501');
      expect(await count(`${name}_audit`)).toBe(0);
    } finally {
      await c.end();
    }
  });

  it('runs at once a DELETE of one parent row even when ON DELETE CASCADE removes many children (the tag counts the parent)', async () => {
    const name = await table(1);
    await admin.query(`CREATE TABLE ${name}_child (id int, parent int REFERENCES ${name} (id) ON DELETE CASCADE)`);
    await admin.query(`INSERT INTO ${name}_child SELECT g, 1 FROM generate_series(1, 50) g`);
    await admin.query(`GRANT SELECT, DELETE ON ${name}_child TO ${t.pg.roles.writer.user}`);
    const c = await pgClient(t, 'write', alice);
    try {
      expect((await c.query(`DELETE FROM ${name} WHERE id = 1`)).rowCount).toBe(1);
      expect(await count(`${name}_child`)).toBe(0);
      expect(requestsFor(name)).toHaveLength(0);
    } finally {
      await c.end();
    }
  });

  it('passes 25P02 through for a DELETE in a failed transaction, without asking anyone', async () => {
    const name = await table(10);
    const c = await pgClient(t, 'write', alice);
    try {
      await c.query('BEGIN');
      expect((await sqlError(c.query('SELECT 1/0'))).code).toBe('22012');
      const failed = sqlError(c.query(`DELETE FROM ${name} WHERE id > 3`));
      const asked = await denyIfRequested(name);
      const err = await failed;
      expect(asked).toBeUndefined();
      expect(err.code).toBe('25P02');
      await c.query('ROLLBACK');
      expect(await count(name)).toBe(10);
    } finally {
      await c.end();
    }
  });

  it('holds EXPLAIN ANALYZE DELETE over the threshold (it deletes, whatever its command tag says)', async () => {
    const name = await table(10);
    const c = await pgClient(t, 'write', alice);
    try {
      const run = c.query(`EXPLAIN ANALYZE DELETE FROM ${name}`).catch((e: Error) => e);
      const asked = await denyIfRequested(name);
      await run;
      expect(await count(name)).toBe(10);
      // Its command tag (EXPLAIN) carries no count of what it deleted: held without one, as documented.
      expect(asked).toBeDefined();
      expect(asked!.request.statement!.rows).toBeUndefined();
    } finally {
      await c.end();
    }
  });

  it('holds a data-modifying WITH whose SELECT returns fewer rows than it deletes', async () => {
    const name = await table(10);
    const c = await pgClient(t, 'write', alice);
    try {
      const run = c.query(`WITH gone AS (DELETE FROM ${name} RETURNING id) SELECT count(*) FROM gone`).catch((e: Error) => e);
      const asked = await denyIfRequested(name);
      await run;
      expect(await count(name)).toBe(10);
      expect(asked).toBeDefined();
    } finally {
      await c.end();
    }
  });

  it('holds COPY (DELETE ... RETURNING) TO STDOUT rather than ending the session', async () => {
    const name = await table(10);
    await withSession(open('write', alice), async (s) => {
      s.client.write(serialize.query(`COPY (DELETE FROM ${name} RETURNING id) TO STDOUT`));
      const asked = await denyIfRequested(name);
      const got = await s.client.until('Z');
      expect(asked).toBeDefined();
      expect(errors(got).map((e) => e.C)).toEqual(['42501']);
      expect(await count(name)).toBe(10);
      await expectUsable(s);
    });
  });

  it('a function that deletes is not a DELETE: kinds [delete] does not hold it (documents the limit)', async () => {
    const name = await table(10);
    await admin.query(`CREATE FUNCTION ${name}_purge() RETURNS int LANGUAGE sql AS $$ DELETE FROM ${name} RETURNING 1 $$`);
    await admin.query(`GRANT EXECUTE ON FUNCTION ${name}_purge() TO ${t.pg.roles.writer.user}`);
    const c = await pgClient(t, 'write', alice);
    try {
      await c.query(`SELECT ${name}_purge()`);
      expect(requestsFor(name)).toHaveLength(0);
      expect(await count(name)).toBe(0);
    } finally {
      await c.end();
    }
  });

  it('holds an UPDATE ... RETURNING whose response exceeds 16 MiB with its count, and returns every row once approved', async () => {
    const name = await table(0);
    await admin.query(`INSERT INTO ${name} SELECT g, repeat('v', 7 * 1024 * 1024) FROM generate_series(1, 3) g`);
    const c = await pgClient(t, 'write', alice);
    try {
      const run = c.query(`UPDATE ${name} SET note = note || 'w' RETURNING id, length(note) AS len, note`);
      const req = await pendingRequest(name);
      expect(req.request.statement!.rows).toBe(3);
      expect((await admin.query(`SELECT max(length(note)) AS l FROM ${name}`)).rows[0].l).toBe(7 * 1024 * 1024);
      await t.gw.approvals.decide(req.request.id, bob, 'approve', 'ok');
      const done = await run;
      expect(done.rowCount).toBe(3);
      expect(done.rows.map((r) => r.len)).toEqual([7 * 1024 * 1024 + 1, 7 * 1024 * 1024 + 1, 7 * 1024 * 1024 + 1]);
      expect(done.rows.every((r) => r.note.length === 7 * 1024 * 1024 + 1)).toBe(true);
    } finally {
      await c.end();
    }
  }, 60_000);

  it('does not hang when the counted statement follows extended-protocol messages still waiting for their Sync', async () => {
    const name = await table(10);
    await withSession(open('write', alice), async (s) => {
      s.client.write(
        Buffer.concat([serialize.parse({ text: 'SELECT 1' }), serialize.bind({}), serialize.execute({}), serialize.query(`DELETE FROM ${name} WHERE id > 3`)]),
      );
      const asked = await denyIfRequested(name, 5000);
      const got = await untilReady(s, 1, 10_000).catch((e: Error) => e);
      expect(got).not.toBeInstanceOf(Error);
      expect(asked).toBeDefined();
      expect(await count(name)).toBe(10);
    });
  });
});

describe('fail-fast binding', () => {
  it('does not use an approval for the same statement with other whitespace, comments or case', async () => {
    const name = await table(10);
    const c = await pgClient(t, 'write', ci);
    try {
      const sql = `DELETE FROM ${name} WHERE id > 8`;
      const id = requestId((await sqlError(c.query(sql))).message);
      await t.gw.approvals.decide(id, bob, 'approve', 'ok');
      for (const variant of [`${sql} `, `/* same */ ${sql}`, sql.toLowerCase(), `${sql};`, sql.replace('WHERE', 'WHERE\n')]) {
        const err = await sqlError(c.query(variant));
        expect(err.code).toBe('42501');
        expect(err.message).not.toContain(id);
      }
      expect(await count(name)).toBe(10);
      expect(t.gw.approvals.get(id, bob).state).toBe('approved');
      expect((await c.query(sql)).rowCount).toBe(2);
      expect(t.gw.approvals.get(id, bob).state).toBe('used');
    } finally {
      await c.end();
    }
  });

  it('does not use an approval for another principal with the same groups, nor on another resource', async () => {
    const name = await table(10);
    const sql = `DELETE FROM ${name} WHERE id > 8`;
    const c = await pgClient(t, 'write', ci);
    const twin = await pgClient(t, 'write', await t.token('deploy-pipeline-2', ['ci'], { kind: 'machine' }));
    const elsewhere = await pgClient(t, 'write', ci, { database: 'orders2' });
    try {
      const id = requestId((await sqlError(c.query(sql))).message);
      await t.gw.approvals.decide(id, bob, 'approve', 'ok');
      const a = await sqlError(twin.query(sql));
      expect(a.code).toBe('42501');
      expect(a.message).not.toContain(id);
      const b = await sqlError(elsewhere.query(sql));
      expect(b.code).toBe('42501');
      expect(b.message).not.toContain(id);
      expect(await count(name)).toBe(10);
      expect(t.gw.approvals.get(id, bob).state).toBe('approved');
    } finally {
      await Promise.all([c.end(), twin.end(), elsewhere.end()]);
    }
  });

  it('does not use an approval when the same parameter bytes are declared with another type', async () => {
    const name = await table(10);
    const text = `DELETE FROM ${name} WHERE id > $1`;
    const eight = Buffer.from([0, 0, 0, 8]);
    const INT4 = 23;
    const FLOAT4 = 700;
    await withSession(open('write', ci), async (s) => {
      s.client.write(Buffer.concat([serialize.parse({ text, types: [INT4] }), bind('', '', [eight], 1), serialize.execute({}), serialize.sync()]));
      const first = errors(await untilReady(s));
      expect(first.map((e) => e.C)).toEqual(['42501']);
      const id = requestId(first[0]!.M!);
      await t.gw.approvals.decide(id, bob, 'approve', 'id > 8: two rows');
      // The same four bytes as float4 are 1.1e-44: "id > $1" then matches every row.
      s.client.write(Buffer.concat([serialize.parse({ text, types: [FLOAT4] }), bind('', '', [eight], 1), serialize.execute({}), serialize.sync()]));
      const second = await untilReady(s);
      expect(errors(second).map((e) => e.C)).toEqual(['42501']);
      expect(await count(name)).toBe(10);
      expect(t.gw.approvals.get(id, bob).state).toBe('approved');
    });
  });

  it('does not use an approval for the same text and bytes in another parameter format', async () => {
    const name = await table(10);
    const text = `DELETE FROM ${name} WHERE note = $1`;
    await withSession(open('write', ci), async (s) => {
      const v = Buffer.from('row 9');
      s.client.write(Buffer.concat([serialize.parse({ text, types: [25] }), bind('', '', [v], 0), serialize.execute({}), serialize.sync()]));
      const id = requestId(errors(await untilReady(s))[0]!.M!);
      await t.gw.approvals.decide(id, bob, 'approve', 'one row');
      s.client.write(Buffer.concat([serialize.parse({ text, types: [25] }), bind('', '', [v], 1), serialize.execute({}), serialize.sync()]));
      const got = await untilReady(s);
      expect(errors(got).map((e) => e.C)).toEqual(['42501']);
      expect(errors(got)[0]!.M).not.toContain(id);
      expect(await count(name)).toBe(10);
    });
  });

  it('refuses an approval once approval_ttl has passed', async () => {
    const name = await table(10);
    const c = await pgClient(t, 'write', await t.token('short-pipeline', ['ci-short'], { kind: 'machine' }));
    try {
      const sql = `DELETE FROM ${name} WHERE id > 8`;
      const id = requestId((await sqlError(c.query(sql))).message);
      await t.gw.approvals.decide(id, bob, 'approve', 'ok');
      await sleep(1500);
      const err = await sqlError(c.query(sql));
      expect(err.code).toBe('42501');
      expect(err.message).not.toContain(id);
      expect(await count(name)).toBe(10);
      expect(t.gw.approvals.get(id, bob).state).not.toBe('used');
    } finally {
      await c.end();
    }
  });
});

describe('secrets in held statements', () => {
  it('shows approvers, the audit log and the logs a held password option only as [redacted]', async () => {
    const secret = `hunter2-${randomBytes(6).toString('hex')}`;
    const server = `prb_srv_${randomBytes(3).toString('hex')}`;
    const c = await pgClient(t, 'ddl', await t.token('fiona', ['ops', 'fdw']));
    try {
      const sql = `CREATE USER MAPPING FOR CURRENT_USER SERVER ${server} OPTIONS (user 'app', password '${secret}')`;
      const failed = sqlError(c.query(sql));
      const req = await pendingRequest(server);
      expect(req.request.statement!.text).toContain("password '[redacted]'");
      expect(JSON.stringify(req)).not.toContain(secret);
      await t.gw.approvals.decide(req.request.id, bob, 'deny', 'no');
      expect((await failed).code).toBe('42501');
      const logged = t.gw.store.query({ text: server, limit: 100 });
      expect(logged.map((e) => e.type)).toEqual(expect.arrayContaining(['approval.requested', 'statement.started']));
      expect(JSON.stringify(logged)).not.toContain(secret);
      expect(t.gw.store.query({ text: secret, limit: 10 })).toHaveLength(0);
      expect(t.logs.join('')).not.toContain(secret);
    } finally {
      await c.end();
    }
  });
});
