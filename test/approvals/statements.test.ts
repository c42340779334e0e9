import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApprovalError } from '../../src/approvals/errors.js';
import { SIGNATURE_HEADER, verifyWebhookSignature } from '../../src/approvals/notify/signature.js';
import type { ApprovalStatus } from '../../src/approvals/types.js';
import type { AuditEvent } from '../../src/events/types.js';
import type { Principal } from '../../src/identity/principal.js';
import { pgClient, psql } from '../support/clients.js';
import { startGateway, type TestGateway } from '../support/gateway.js';
import { HeldStatements, migratorClient, sqlError } from './fixture.js';

let t: TestGateway;
let admin: pg.Client;
let alice: string;
let ci: string;
let bob: Principal;
let carol: Principal;
let dave: Principal;
let alicePrincipal: Principal;
let held: HeldStatements;
let receiver: Server;
const WEBHOOK_SECRET = randomBytes(16).toString('hex');
/** What the webhook receiver got: body, signature header, and whether the signature verified. */
const deliveries: { body: Record<string, any>; signed: boolean }[] = [];

beforeAll(async () => {
  receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      const header = String(req.headers[SIGNATURE_HEADER.toLowerCase()] ?? '');
      deliveries.push({ body: JSON.parse(body), signed: verifyWebhookSignature(WEBHOOK_SECRET, body, header, Math.floor(Date.now() / 1000)) });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  process.env.SLUICE_TEST_WEBHOOK_SECRET = WEBHOOK_SECRET;
  const hook = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks/sluice`;
  t = await startGateway((c) => {
    c.server.notifications = { webhooks: [{ name: 'approvers', url: hook, secret: '${env:SLUICE_TEST_WEBHOOK_SECRET}' }] };
    const approvers = [{ groups: ['dba'] }];
    c.policies.push(
      { name: 'ops', when: { groups: ['ops'] }, resources: ['orders'], grants: ['read', 'write', 'ddl'] },
      { name: 'ci', when: { kind: 'machine', groups: ['ci'] }, resources: ['orders'], grants: ['read', 'write', 'ddl'] },
      { name: 'hold-drops', when: { groups: ['ops'] }, resources: ['orders'], approval: { statements: { kinds: ['ddl.drop'] }, approvers, request_ttl: '2m' } },
      { name: 'hold-truncate', when: { groups: ['ops'] }, resources: ['orders'], approval: { statements: { kinds: ['truncate'] }, approvers, request_ttl: 2 } },
      { name: 'big-deletes', when: { groups: ['ops'] }, resources: ['orders'], approval: { statements: { kinds: ['delete', 'update'] }, rows_over: 3, approvers, request_ttl: '2m' } },
      { name: 'mask-notes', when: { subjects: ['mona'] }, resources: ['orders'], masking: { columns: [{ match: ['public.*.note'] }] } },
      {
        name: 'ci-holds',
        when: { kind: 'machine', groups: ['ci'] },
        resources: ['orders'],
        approval: { statements: { kinds: ['delete', 'ddl.drop'] }, mode: 'fail_fast', approvers, approval_ttl: '10m', request_ttl: '10m' },
      },
    );
  });
  admin = await migratorClient(t);
  alice = await t.token('alice', ['ops']);
  ci = await t.token('deploy-pipeline', ['ci'], { kind: 'machine' });
  const auth = t.gw.state().authenticator;
  alicePrincipal = await auth.authenticate(alice);
  bob = await auth.authenticate(await t.token('bob', ['dba']));
  carol = await auth.authenticate(await t.token('carol', ['dba']));
  dave = await auth.authenticate(await t.token('dave', ['dev']));
  held = new HeldStatements(t, admin, bob);
});
afterAll(async () => {
  await admin?.end();
  await t?.stop();
  await new Promise((r) => receiver?.close(r));
});

const table = (rows?: number) => held.table(rows);
const count = (name: string) => held.count(name);
const exists = (name: string) => held.exists(name);
const pendingRequest = (needle: string) => held.pendingRequest(needle);
const stateOf = (id: string, want: ApprovalStatus['state']) => held.stateOf(id, want);

async function events(id: string): Promise<AuditEvent[]> {
  const page = t.gw.store.query({ text: id, limit: 100, order: "asc" });
  return page.filter((e) => (e.data as { id?: string }).id === id);
}


describe('interactive approval (wait mode)', () => {
  it('holds a DROP while psql waits, shows the request, and runs it once approved', async () => {
    const name = await table(1);
    const run = psql(t, t.url('ddl'), alice, ['-c', `DROP TABLE ${name}`]);
    let stderr = '';
    run.child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const req = await pendingRequest(name);
    expect(req.request.rule).toBe('hold-drops');
    expect(req.request.requester.subject).toBe('alice');
    expect(req.request.statement).toMatchObject({ text: `DROP TABLE ${name}`, grant: 'ddl', mode: 'wait' });
    expect(req.request.statement!.facts.kinds).toEqual(['ddl.drop']);
    expect(req.request.link).toMatch(new RegExp(`/approvals/${req.request.id}$`));
    for (let i = 0; i < 100 && !stderr.includes(req.request.id); i++) await new Promise((r) => setTimeout(r, 50));
    expect(stderr).toContain(`NOTICE:  sluice: statement held for approval by policy "hold-drops": request ${req.request.id}`);
    expect(await exists(name)).toBe(true);

    await t.gw.approvals.decide(req.request.id, bob, 'approve', 'planned cleanup');
    const done = await run;
    expect(done.code).toBe(0);
    expect(done.stdout).toContain('DROP TABLE');
    expect(await exists(name)).toBe(false);
    expect((await stateOf(req.request.id, 'used')).state).toBe('used');
    const types = (await events(req.request.id)).map((e) => e.type);
    expect(types).toEqual(['approval.requested', 'approval.decided', 'approval.used']);

    // Approvers were told through the signed webhook, of the request and of the decision.
    for (let i = 0; i < 100 && deliveries.filter((d) => d.body.id === req.request.id).length < 2; i++) await new Promise((r) => setTimeout(r, 50));
    const told = deliveries.filter((d) => d.body.id === req.request.id);
    expect(told.map((d) => d.body.type)).toEqual(['approval.requested', 'approval.decided']);
    expect(told.every((d) => d.signed)).toBe(true);
    expect(told[0]!.body).toMatchObject({ kind: 'statement', rule: 'hold-drops', resource: 'orders', link: req.request.link, statement: { text: `DROP TABLE ${name}` } });
    expect(told[1]!.body).toMatchObject({ state: 'approved', decisions: [{ decision: 'approve', by: { subject: 'bob' }, reason: 'planned cleanup' }] });
  });

  it('returns 42501 naming the approver and reason when the request is denied, and the session stays usable', async () => {
    const name = await table(1);
    const c = await pgClient(t, 'ddl', alice);
    const notices: string[] = [];
    c.on('notice', (n) => notices.push(n.message ?? ''));
    try {
      const failed = sqlError(c.query(`DROP TABLE ${name}`));
      const req = await pendingRequest(name);
      await t.gw.approvals.decide(req.request.id, carol, 'deny', 'not during business hours');
      const err = await failed;
      expect(err.code).toBe('42501');
      expect(err.message).toContain('denied by carol: not during business hours');
      expect(notices.some((n) => n.includes(req.request.id))).toBe(true);
      expect(await exists(name)).toBe(true);
      expect((await c.query('SELECT 1 AS ok')).rows).toEqual([{ ok: 1 }]);
    } finally {
      await c.end();
    }
  });

  it('returns 57014 when nobody decides within request_ttl, and records the expiry', async () => {
    const name = await table(5);
    const c = await pgClient(t, 'ddl', alice);
    try {
      const err = await sqlError(c.query(`TRUNCATE ${name}`));
      expect(err.code).toBe('57014');
      expect(err.message).toMatch(/nobody decided request apr_[a-z2-7]{20} in time/);
      expect(await count(name)).toBe(5);
      const id = /request (apr_[a-z2-7]{20})/.exec(err.message)![1]!;
      expect(t.gw.approvals.get(id, bob).state).toBe('expired');
      expect((await events(id)).map((e) => e.type)).toContain('approval.expired');
      await expect(t.gw.approvals.decide(id, bob, 'approve', 'too late')).rejects.toMatchObject({ code: 'approval_not_pending' });
      // Approvers are told it ended.
      for (let i = 0; i < 100 && !deliveries.some((d) => d.body.id === id && d.body.state === 'expired'); i++) await new Promise((r) => setTimeout(r, 50));
      expect(deliveries.filter((d) => d.body.id === id).map((d) => [d.body.type, d.body.state])).toEqual([
        ['approval.requested', 'pending'],
        ['approval.decided', 'expired'],
      ]);
    } finally {
      await c.end();
    }
  });

  it('withdraws the request when psql is interrupted (CancelRequest) while it waits', async () => {
    const name = await table(1);
    const run = psql(t, t.url('ddl'), alice, ['-c', `DROP TABLE ${name}`]);
    const req = await pendingRequest(name);
    run.child.kill('SIGINT');
    const done = await run;
    expect(done.code).not.toBe(0);
    expect(done.stderr).toContain(`canceling statement due to user request; approval request ${req.request.id} was withdrawn`);
    expect((await stateOf(req.request.id, 'cancelled')).state).toBe('cancelled');
    expect(await exists(name)).toBe(true);
  });

  it('cancels the request when the waiting client disconnects, so the statement never runs', async () => {
    const name = await table(1);
    const c = await pgClient(t, 'ddl', alice);
    c.on('error', () => undefined);
    const failed = c.query(`DROP TABLE ${name}`).catch(() => undefined);
    const req = await pendingRequest(name);
    (c as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
    await failed;
    expect((await stateOf(req.request.id, 'cancelled')).state).toBe('cancelled');
    await expect(t.gw.approvals.decide(req.request.id, bob, 'approve', 'late')).rejects.toMatchObject({ code: 'approval_not_pending' });
    await new Promise((r) => setTimeout(r, 200));
    expect(await exists(name)).toBe(true);
  });
});

describe('row thresholds', () => {
  it('runs a DELETE at or under rows_over at once, and holds one over it with the table unchanged', async () => {
    const name = await table(10);
    const c = await pgClient(t, 'write', alice);
    try {
      const under = await c.query(`DELETE FROM ${name} WHERE id <= 3`);
      expect(under.rowCount).toBe(3);
      expect(await count(name)).toBe(7);

      const over = c.query(`DELETE FROM ${name} WHERE id > 3 RETURNING id`);
      const req = await pendingRequest(name);
      expect(req.request.statement!.rows).toBe(7);
      expect(req.request.rule).toBe('big-deletes');
      expect(await count(name)).toBe(7);
      await t.gw.approvals.decide(req.request.id, bob, 'approve', 'ticket 4711');
      const done = await over;
      expect(done.rowCount).toBe(7);
      expect(done.rows.map((r) => r.id).sort((a, b) => a - b)).toEqual([4, 5, 6, 7, 8, 9, 10]);
      expect(await count(name)).toBe(0);
    } finally {
      await c.end();
    }
  });

  it('measures inside the client transaction and leaves it open and intact', async () => {
    const name = await table(10);
    const c = await pgClient(t, 'write', alice);
    try {
      await c.query('BEGIN');
      await c.query(`INSERT INTO ${name} VALUES (11, 'inside')`);
      expect((await c.query(`UPDATE ${name} SET note = 'x' WHERE id <= 2`)).rowCount).toBe(2);
      const held = c.query(`UPDATE ${name} SET note = 'y' WHERE id > 5`);
      const req = await pendingRequest(name);
      expect(req.request.statement!.rows).toBe(6);
      await t.gw.approvals.decide(req.request.id, bob, 'approve', 'ok');
      expect((await held).rowCount).toBe(6);
      expect(await count(name)).toBe(10);
      await c.query('COMMIT');
      expect(await count(name)).toBe(11);
      const notes = (await admin.query(`SELECT note, count(*)::int AS n FROM ${name} GROUP BY note ORDER BY note`)).rows;
      expect(notes).toEqual([
        { note: 'row 3', n: 1 },
        { note: 'row 4', n: 1 },
        { note: 'row 5', n: 1 },
        { note: 'x', n: 2 },
        { note: 'y', n: 6 },
      ]);
    } finally {
      await c.end();
    }
  });

  it('masks what a counted statement returns, whether it ran at once or after approval', async () => {
    const name = await table(10);
    const c = await pgClient(t, 'write', await t.token('mona', ['ops']));
    try {
      const under = await c.query(`DELETE FROM ${name} WHERE id <= 2 RETURNING id, note`);
      expect(under.rows).toEqual([
        { id: 1, note: '[masked]' },
        { id: 2, note: '[masked]' },
      ]);
      const over = c.query(`DELETE FROM ${name} WHERE id > 2 RETURNING id, note`);
      const req = await pendingRequest(name);
      await t.gw.approvals.decide(req.request.id, bob, 'approve', 'ok');
      const rows = (await over).rows;
      expect(rows).toHaveLength(8);
      expect(new Set(rows.map((r) => r.note))).toEqual(new Set(['[masked]']));
    } finally {
      await c.end();
    }
  });

  it('passes on the error of a statement that fails while it is counted', async () => {
    const name = await table(3);
    const c = await pgClient(t, 'write', alice);
    try {
      const err = await sqlError(c.query(`DELETE FROM ${name} WHERE id = 1/0`));
      expect(err.code).toBe('22012');
      expect((await c.query('SELECT 1 AS ok')).rows).toEqual([{ ok: 1 }]);
      expect(await count(name)).toBe(3);
    } finally {
      await c.end();
    }
  });
});

describe('fail-fast approval (pipelines)', () => {
  it('fails with the request id, then runs the identical re-run exactly once after approval', async () => {
    const name = await table(10);
    const c = await pgClient(t, 'write', ci);
    try {
      const first = await sqlError(c.query(`DELETE FROM ${name} WHERE id > $1`, [4]));
      expect(first.code).toBe('42501');
      const id = /request (apr_[a-z2-7]{20})/.exec(first.message)![1]!;
      expect(first.message).toContain('run the same statement with the same parameters again');
      expect(await count(name)).toBe(10);
      const again = await sqlError(c.query(`DELETE FROM ${name} WHERE id > $1`, [4]));
      expect(again.message).toContain(id);

      const status = t.gw.approvals.get(id, bob);
      expect(status.request.requester).toMatchObject({ subject: 'deploy-pipeline', kind: 'machine' });
      expect(status.request.statement!.params).toEqual(['4']);
      await t.gw.approvals.decide(id, bob, 'approve', 'release 1.2');

      const other = await sqlError(c.query(`DELETE FROM ${name} WHERE id > $1`, [2]));
      expect(other.message).not.toContain(id);
      expect(await count(name)).toBe(10);

      const ran = await c.query(`DELETE FROM ${name} WHERE id > $1`, [4]);
      expect(ran.rowCount).toBe(6);
      expect(t.gw.approvals.get(id, bob).state).toBe('used');
      await admin.query(`INSERT INTO ${name} SELECT g, 'again' FROM generate_series(5, 10) g`);
      const third = await sqlError(c.query(`DELETE FROM ${name} WHERE id > $1`, [4]));
      expect(third.code).toBe('42501');
      expect(third.message).not.toContain(id);
      expect(await count(name)).toBe(10);
    } finally {
      await c.end();
    }
  });

  it('binds an approval of EXECUTE to the prepared body, not only to the name', async () => {
    const approved = await table(5);
    const other = await table(5);
    const a = await pgClient(t, 'write', ci);
    const b = await pgClient(t, 'write', ci);
    try {
      await a.query(`PREPARE zap AS DELETE FROM ${approved}`);
      const first = await sqlError(a.query('EXECUTE zap'));
      const id = /request (apr_[a-z2-7]{20})/.exec(first.message)![1]!;
      expect(t.gw.approvals.get(id, bob).request.statement!.facts).toMatchObject({ kinds: ['execute', 'delete'], tables: [approved] });
      await t.gw.approvals.decide(id, bob, 'approve', `empty ${approved}`);

      // The same text, EXECUTE zap, with zap prepared as something else: not what was approved.
      await b.query(`PREPARE zap AS DELETE FROM ${other}`);
      const swapped = await sqlError(b.query('EXECUTE zap'));
      expect(swapped.code).toBe('42501');
      expect(swapped.message).not.toContain(id);
      expect(await count(other)).toBe(5);

      expect((await a.query('EXECUTE zap')).rowCount).toBe(5);
      expect(await count(approved)).toBe(0);
    } finally {
      await a.end();
      await b.end();
    }
  });

  it('does not use up an approval on a re-run that cannot run (a failed transaction)', async () => {
    const name = await table(5);
    const c = await pgClient(t, 'write', ci);
    try {
      const first = await sqlError(c.query(`DELETE FROM ${name}`));
      const id = /request (apr_[a-z2-7]{20})/.exec(first.message)![1]!;
      await t.gw.approvals.decide(id, bob, 'approve', 'go');
      await c.query('BEGIN');
      await sqlError(c.query('SELECT 1/0'));
      expect((await sqlError(c.query(`DELETE FROM ${name}`))).code).toBe('25P02');
      await c.query('ROLLBACK');
      expect(t.gw.approvals.get(id, bob).state).toBe('approved');
      expect((await c.query(`DELETE FROM ${name}`)).rowCount).toBe(5);
      expect(t.gw.approvals.get(id, bob).state).toBe('used');
    } finally {
      await c.end();
    }
  });

  it('runs once when two connections re-run the approved statement at the same time', async () => {
    const name = await table(5);
    await admin.query(`CREATE TABLE ${name}_log (n int)`);
    await admin.query(`GRANT INSERT, SELECT ON ${name}_log TO ${t.pg.roles.writer.user}`);
    const a = await pgClient(t, 'write', ci);
    const b = await pgClient(t, 'write', ci);
    try {
      const sql = `WITH gone AS (DELETE FROM ${name} WHERE id = 5 RETURNING id) INSERT INTO ${name}_log SELECT count(*) FROM gone`;
      const first = await sqlError(a.query(sql));
      const id = /request (apr_[a-z2-7]{20})/.exec(first.message)![1]!;
      await t.gw.approvals.decide(id, bob, 'approve', 'once');
      const results = await Promise.allSettled([a.query(sql), b.query(sql)]);
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      const refused = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
      expect((refused.reason as { code: string }).code).toBe('42501');
      expect(Number((await admin.query(`SELECT count(*) AS n FROM ${name}_log`)).rows[0].n)).toBe(1);
      expect(await count(name)).toBe(4);
      const used = (await events(id)).filter((e) => e.type === 'approval.used');
      expect(used).toHaveLength(1);
    } finally {
      await a.end();
      await b.end();
    }
  });
});

describe('who may decide', () => {
  it('refuses self-approval, non-approvers, replayed decisions and decisions on a decided request', async () => {
    const name = await table(1);
    const c = await pgClient(t, 'ddl', alice);
    try {
      const running = c.query(`DROP TABLE ${name}`);
      const req = await pendingRequest(name);
      const id = req.request.id;
      const refused = async (p: Principal, code: string) => {
        const err = await t.gw.approvals.decide(id, p, 'approve', 'me').then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(ApprovalError);
        expect(err).toMatchObject({ code });
      };
      await refused(alicePrincipal, 'self_approval');
      await refused(dave, 'not_approver');
      expect(t.gw.approvals.get(id, bob).state).toBe('pending');
      await t.gw.approvals.decide(id, bob, 'approve', 'fine');
      await refused(bob, 'decision_replayed');
      await refused(carol, 'approval_not_pending');
      await running;
      expect(await exists(name)).toBe(false);
      const decided = (await events(id)).filter((e) => e.type === 'approval.decided');
      expect(decided).toHaveLength(1);
      expect(decided[0]!.data).toMatchObject({ decision: 'approve', by: { subject: 'bob' }, reason: 'fine', state: 'approved' });
    } finally {
      await c.end();
    }
  });
});

describe('what the approver sees', () => {
  it('holds an extended-protocol statement under a row rule without counting, with its parameters', async () => {
    const name = await table(10);
    const c = await pgClient(t, 'write', alice);
    try {
      const held = c.query(`DELETE FROM ${name} WHERE id > $1`, [8]);
      const req = await pendingRequest(name);
      expect(req.request.statement!.rows).toBeUndefined();
      expect(req.request.statement!.params).toEqual(['8']);
      expect(await count(name)).toBe(10);
      await t.gw.approvals.decide(req.request.id, bob, 'approve', 'two rows');
      expect((await held).rowCount).toBe(2);
    } finally {
      await c.end();
    }
  });

  it('carries the justification set with SET sluice.justification', async () => {
    const name = await table(1);
    const c = await pgClient(t, 'ddl', alice);
    try {
      await c.query(`SET sluice.justification = 'ticket 4711: drop the scratch table'`);
      const held = c.query(`DROP TABLE ${name}`);
      const req = await pendingRequest(name);
      expect(req.request.justification).toBe('ticket 4711: drop the scratch table');
      await t.gw.approvals.decide(req.request.id, bob, 'deny', 'keep it');
      await expect(held).rejects.toMatchObject({ code: '42501' });
    } finally {
      await c.end();
    }
  });

  it('never holds a statement the session grant does not allow', async () => {
    const name = await table(1);
    const c = await pgClient(t, 'write', alice);
    try {
      const err = await sqlError(c.query(`DROP TABLE ${name}`));
      expect(err.code).toBe('42501');
      expect(err.message).toContain('needs grant ddl');
      expect(t.gw.approvals.list(bob, { state: 'pending' }).filter((s) => s.request.statement?.text.includes(name))).toHaveLength(0);
    } finally {
      await c.end();
    }
  });
});

