import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { ApprovalStatus } from '../../src/approvals/types.js';
import type { AuditEvent } from '../../src/events/types.js';
import type { Principal } from '../../src/identity/principal.js';
import { pgClient, psql } from '../support/clients.js';
import { startGateway, type TestGateway } from '../support/gateway.js';

type PgError = Error & { code?: string };

let t: TestGateway;
let config: Record<string, any>;
let admin: pg.Client;
let bob: Principal;

const HINT = 'request time-boxed access: sluice access request orders --grant write --for <duration> --reason <text>';
const EXPIRED = /^access request (apr_[a-z2-7]{20}) \(grant write on orders\) expired at (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z); request access again$/;

beforeAll(async () => {
  t = await startGateway((c) => {
    c.policies.push({
      name: 'dev-write-access',
      when: { groups: ['dev'] },
      resources: ['orders'],
      access: { grants: ['write'], max_duration: '1h', approvers: [{ groups: ['dba'] }], request_ttl: '10m' },
    });
    config = c;
  });
  admin = new pg.Client({
    host: t.pg.host,
    port: t.pg.port,
    user: t.pg.roles.migrator.user,
    password: t.pg.roles.migrator.password,
    database: t.pg.database,
    ssl: { rejectUnauthorized: false },
  });
  await admin.connect();
  bob = await t.gw.state().authenticator.authenticate(await t.token('bob', ['dba']));
});
afterAll(async () => {
  await admin?.end();
  await t?.stop();
});

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

/** A table the write grant may insert into. */
async function table(): Promise<string> {
  const name = `acc_${randomBytes(4).toString('hex')}`;
  await admin.query(`CREATE TABLE ${name} (id int PRIMARY KEY, note text)`);
  await admin.query(`GRANT SELECT, INSERT ON ${name} TO ${t.pg.roles.writer.user}`);
  return name;
}

/** A client through Sluice whose asynchronous FATAL (the end of its session) is captured rather than thrown. */
async function watched(grant: string, token: string): Promise<{ client: pg.Client; ended: Promise<PgError> }> {
  const client = await pgClient(t, grant, token);
  const ended = new Promise<PgError>((resolve) => client.on('error', resolve));
  cleanups.push(() => client.end().catch(() => undefined));
  return { client, ended };
}

async function connectError(grant: string, token: string): Promise<PgError> {
  return pgClient(t, grant, token).then(
    async (c) => {
      await c.end();
      throw new Error('the connection was expected to be refused');
    },
    (e: PgError) => e,
  );
}

/** An access request by `who` for write on orders, approved by bob. */
async function approvedAccess(who: Principal, seconds: number): Promise<ApprovalStatus> {
  const requested = await t.gw.approvals.requestAccess(who, { resource: 'orders', grant: 'write', seconds, reason: 'fix order 42' });
  expect(requested.state).toBe('pending');
  const approved = await t.gw.approvals.decide(requested.request.id, bob, 'approve', 'go ahead');
  expect(approved.state).toBe('approved');
  return approved;
}

function eventsOf(id: string): AuditEvent[] {
  return t.gw.store.query({ text: id, limit: 100, order: 'asc' }).filter((e) => (e.data as { id?: string }).id === id);
}

describe('time-boxed access', () => {
  it('refuses a grant the principal lacks and says how to request it', async () => {
    const token = await t.token('dana', ['dev']);
    const err = await connectError('write', token);
    expect(err.code).toBe('42501');
    expect(err.message).toBe(`policy "dev-read" allows resource orders but not grant write; grants you may ask for: read; or ${HINT}`);
    const r = await psql(t, t.url('write'), token, ['-c', 'select 1']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(HINT);
    const other = await connectError('write', await t.token('olga', ['ops']));
    expect(other.message).not.toContain('time-boxed');
  });

  it('opens write sessions while the grant lasts, ends them when it ends, and refuses new ones after', async () => {
    const name = await table();
    const token = await t.token('alice', ['dev']);
    const alice = await t.gw.state().authenticator.authenticate(token);

    const requested = await t.gw.approvals.requestAccess(alice, { resource: 'orders', grant: 'write', seconds: 4, reason: 'fix order 42' });
    expect((await connectError('write', token)).code).toBe('42501');
    const approved = await t.gw.approvals.decide(requested.request.id, bob, 'approve', 'go ahead');
    expect(approved.state).toBe('approved');
    const id = approved.request.id;

    const { client, ended } = await watched('write', token);
    await client.query(`INSERT INTO ${name} VALUES (1, 'written under ${id}')`);
    expect((await admin.query(`SELECT note FROM ${name}`)).rows).toEqual([{ note: `written under ${id}` }]);
    const live = t.gw.registry.list().find((s) => s.principal.subject === 'alice' && s.grant === 'write');
    expect(live?.policy).toBe('dev-write-access');
    expect(live?.endsAt?.toISOString()).toBe(approved.validUntil);

    const err = await ended;
    expect(err.code).toBe('57P01');
    expect(err.message).toMatch(EXPIRED);
    expect(err.message).toBe(`access request ${id} (grant write on orders) expired at ${approved.validUntil}; request access again`);

    await vi.waitFor(() => expect(eventsOf(id).map((e) => e.type)).toContain('approval.expired'), { timeout: 10_000 });
    const refused = await connectError('write', token);
    expect(refused.code).toBe('42501');
    expect(refused.message).toContain(HINT);

    const opened = t.gw.store.query({ types: ['session.opened'], subject: 'alice', limit: 10 }).filter((e) => e.data.grant === 'write');
    expect(opened).toHaveLength(1);
    const sessionId = opened[0]!.sessionId!;
    expect(opened[0]!.data).toMatchObject({ policy: 'dev-write-access', accessRequest: id, endsAt: approved.validUntil });

    const history = eventsOf(id);
    expect(history.map((e) => e.type)).toEqual(['approval.requested', 'approval.decided', 'approval.used', 'approval.expired']);
    const used = history[2]!;
    expect(used.sessionId).toBe(sessionId);
    expect(used.data).toMatchObject({ id, kind: 'access', rule: 'dev-write-access', grant: 'write', until: approved.validUntil });
    expect(used.seq).toBeLessThan(opened[0]!.seq);
    expect(history[3]!.data).toMatchObject({ endedAt: approved.validUntil });

    await vi.waitFor(() => {
      const ends = t.gw.store.query({ sessionId, limit: 100 }).map((e) => [e.type, e.data.reason]);
      expect(ends).toContainEqual(['session.terminated', 'access_expired']);
      expect(ends.at(-1)).toEqual(['session.closed', 'access_expired']);
    });
  });

  it('ends a psql statement in flight when the grant ends', async () => {
    const token = await t.token('frank', ['dev']);
    const approved = await approvedAccess(await t.gw.state().authenticator.authenticate(token), 3);
    const r = await psql(t, t.url('write'), token, ['-c', 'select pg_sleep(30)']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`FATAL:  access request ${approved.request.id} (grant write on orders) expired at ${approved.validUntil}; request access again`);
  });

  it('grants exactly the grant approved: write access opens no ddl session', async () => {
    const token = await t.token('gina', ['dev']);
    await approvedAccess(await t.gw.state().authenticator.authenticate(token), 600);
    const err = await connectError('ddl', token);
    expect(err.code).toBe('42501');
    const { client } = await watched('write', token);
    expect((await client.query('select 1 as ok')).rows).toEqual([{ ok: 1 }]);
  });
});

describe('time-boxed access across a reload', () => {
  afterAll(async () => {
    t.writeConfig(config);
    await t.gw.reload();
  });

  it('keeps a session on a valid grant and ends it once its access rule is gone', async () => {
    const token = await t.token('erin', ['dev']);
    const approved = await approvedAccess(await t.gw.state().authenticator.authenticate(token), 600);
    const { client, ended } = await watched('write', token);

    t.writeConfig({ ...config, policies: [...config.policies, { name: 'unrelated', when: { groups: ['nobody'] }, resources: ['orders'], grants: ['read'] }] });
    expect(await t.gw.reload()).toMatchObject({ ok: true, terminated: 0 });
    expect((await client.query('select 2 as still')).rows).toEqual([{ still: 2 }]);
    const live = t.gw.registry.list().find((s) => s.principal.subject === 'erin');
    expect(live?.endsAt?.toISOString()).toBe(approved.validUntil);

    t.writeConfig({ ...config, policies: config.policies.filter((p: { name: string }) => p.name !== 'dev-write-access') });
    expect(await t.gw.reload()).toMatchObject({ ok: true, terminated: 1 });
    const err = await ended;
    expect(err.code).toBe('42501');
    expect(err.message).toBe('session ended after a configuration reload: policy "dev-read" allows resource orders but not grant write; grants you may ask for: read');
  });
});
