import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { AuditEvent } from '../../src/events/types.js';
import { startGateway, type TestGateway } from '../support/gateway.js';
import { psql } from '../support/clients.js';
import { testPostgres } from '../support/pg-env.js';

let t: TestGateway;
beforeAll(async () => {
  t = await startGateway();
});
afterAll(async () => {
  await t?.stop();
});

async function asSuperuser(sql: string): Promise<void> {
  const env = testPostgres();
  const c = new pg.Client({ host: env.host, port: env.port, user: env.superuser.user, password: env.superuser.password, database: env.database });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

/** The events of the session that ran a statement containing `marker`, once the session has closed. */
async function eventsOf(marker: string): Promise<AuditEvent[]> {
  return vi.waitFor(() => {
    const started = t.gw.store.query({ types: ['statement.started'], text: marker, limit: 10 });
    expect(started.length).toBeGreaterThan(0);
    const events = t.gw.store.query({ sessionId: started[0].sessionId, limit: 100 });
    expect(events[events.length - 1].type).toBe('session.closed');
    return events;
  });
}

describe('psql through Sluice', () => {
  it('runs statements over TLS as the grant asked for and audits each one', async () => {
    const token = await t.token('alice', ['dba']);
    const r = await psql(t, t.url('read'), token, ['-c', "select count(*) from customers where name like 'customer 1%' /* psql-audit-1 */", '-c', 'show ssl']);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim().split('\n')).toEqual(['12', 'on']);
    const events = await eventsOf('psql-audit-1');
    expect(events.map((e) => e.type)).toEqual([
      'session.opened',
      'statement.started',
      'statement.completed',
      'statement.started',
      'statement.completed',
      'session.closed',
    ]);
    const opened = events[0];
    expect(opened.principal).toMatchObject({ subject: 'alice', kind: 'person' });
    expect(opened.data).toMatchObject({ grant: 'read', policy: 'dba', tls: true, applicationName: 'psql' });
    expect(events[2].data).toMatchObject({ tags: ['SELECT 1'], rows: 1 });
    for (let i = 1; i < events.length; i++) expect(events[i].prevHash).toBe(events[i - 1].hash);
  });

  it('uses the backend role of the grant, so the database enforces least privilege', async () => {
    const token = await t.token('alice', ['dba']);
    const read = await psql(t, t.url('read'), token, ['-c', 'select current_user']);
    expect(read.stdout.trim()).toBe(t.pg.roles.reader.user);
    // The guard refuses the UPDATE before it reaches the backend; a SELECT it allows is still refused by the role.
    const denied = await psql(t, t.url('read'), token, ['-c', "update customers set name = name where id = 1"]);
    expect(denied.code).not.toBe(0);
    expect(denied.stderr).toContain('sluice: UPDATE needs grant write; this session has grant read');
    const catalog = await psql(t, t.url('read'), token, ['-c', 'select count(*) from pg_authid']);
    expect(catalog.code).not.toBe(0);
    expect(catalog.stderr).toContain('permission denied for table pg_authid');
    const write = await psql(t, t.url('write'), token, ['-c', "update customers set name = name where id = 1"]);
    expect(write.stdout.trim()).toBe('UPDATE 1');
  });

  it('refuses a grant the policy does not give, naming the policy and the grants on offer', async () => {
    const token = await t.token('bob', ['dev']);
    const r = await psql(t, t.url('write'), token, ['-c', 'select 1']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('FATAL:  policy "dev-read" allows resource orders but not grant write; grants you may ask for: read');
    await vi.waitFor(() => {
      const refused = t.gw.store.query({ types: ['session.refused'], subject: 'bob', limit: 1, order: 'desc' });
      expect(refused[0].data).toMatchObject({ reason: 'grant_not_allowed', grant: 'write' });
    });
  });

  it('lets deny rules win over allow rules', async () => {
    const token = await t.token('ivan', ['dba', 'intern']);
    const r = await psql(t, t.url('write'), token, ['-c', 'select 1']);
    expect(r.stderr).toContain('policy "no-write-for-interns" denies');
    const read = await psql(t, t.url('read'), token, ['-c', 'select 1']);
    expect(read.stdout.trim()).toBe('1');
  });

  it('refuses plaintext when the listener requires TLS, before asking for the token', async () => {
    const strict = await startGateway((c) => (c.server.postgres.allow_plaintext = false));
    try {
      const token = await strict.token('alice', ['dba']);
      const r = await psql(strict, strict.url('read', 'orders', 'disable'), token, ['-c', 'select 1']);
      expect(r.stderr).toContain('Sluice accepts tokens only over TLS');
      expect(r.stderr).not.toContain(token.slice(0, 20));
    } finally {
      await strict.stop();
    }
  });

  it('refuses unknown resources and non-grant users with the right SQLSTATE', async () => {
    const token = await t.token('alice', ['dba']);
    const unknown = await psql(t, t.url('read', 'nope'), token, ['-c', 'select 1']);
    expect(unknown.stderr).toContain('resource "nope" does not exist');
    const user = await psql(t, t.url('postgres'), token, ['-c', 'select 1']);
    expect(user.stderr).toContain('user "postgres" is not a grant: connect as read, write, ddl or admin');
    const noToken = await psql(t, t.url('read'), '', ['-w', '-c', 'select 1']);
    expect(noToken.code).not.toBe(0);
  });

  it('refuses SET client_encoding, and ends a session whose client_encoding a policy let change away from UTF-8', async () => {
    const token = await t.token('alice', ['dba']);
    const refused = await psql(t, t.url('read'), token, ['-v', 'ON_ERROR_STOP=0', '-c', "set client_encoding = 'SJIS'", '-c', 'select 1']);
    expect(refused.stderr).toContain('ERROR:  sluice: SET of client_encoding');
    expect(refused.stdout.trim()).toBe('1');
    const allowing = await startGateway((c) => {
      c.policies.push({ name: 'encoding-ok', effect: 'allow', when: { groups: ['dba'] }, resources: ['*'], statements: { settings: ['client_encoding'] } });
    });
    try {
      const tk = await allowing.token('alice', ['dba']);
      const r = await psql(allowing, allowing.url('read'), tk, ['-c', "set client_encoding = 'SJIS'", '-c', 'select 1']);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain('client_encoding was changed to SJIS; Sluice inspects statements as UTF-8');
      const same = await psql(allowing, allowing.url('read'), tk, ['-c', "set client_encoding = 'UTF8'", '-c', 'select 1']);
      expect(same.stdout.trim()).toBe('SET\n1');
    } finally {
      await allowing.stop();
    }
  });

  it('refuses expired and foreign tokens without echoing them', async () => {
    const forged = (await t.token('alice', ['dba'])).replace(/\.[^.]+$/, '.AAAA');
    const r = await psql(t, t.url('read'), forged, ['-c', 'select 1']);
    expect(r.stderr).toMatch(/FATAL: {2}authentication failed: /);
    expect(r.stderr).not.toContain(forged.split('.')[1]);
  });

  it('copies in and out, and cancels a running query on Ctrl-C', async () => {
    const token = await t.token('alice', ['dba']);
    const ddl = await psql(t, t.url('ddl'), token, ['-c', 'create table copy_target (id int, note text)']);
    expect(ddl.stderr).toBe('');
    // GRANT needs grant admin; the test grants as the superuser.
    await asSuperuser('grant select, insert on copy_target to sluice_reader, sluice_writer');
    const data = Array.from({ length: 500 }, (_, i) => `${i}\tnote ${i}`).join('\n') + '\n';
    const copyIn = await psql(t, t.url('write'), token, ['-c', '\\copy copy_target from stdin'], data);
    expect(copyIn.stdout.trim()).toBe('COPY 500');
    const copyOut = await psql(t, t.url('read'), token, ['-c', 'copy (select id from copy_target order by id) to stdout']);
    expect(copyOut.stdout.trim().split('\n')).toHaveLength(500);

    const running = psql(t, t.url('read'), token, ['-c', 'select pg_sleep(30) /* cancel-me */']);
    await vi.waitFor(() => expect(t.gw.store.query({ types: ['statement.started'], text: 'cancel-me', limit: 1 })).toHaveLength(1), { timeout: 10_000 });
    await new Promise((r) => setTimeout(r, 200));
    running.child.kill('SIGINT');
    const cancelled = await running;
    expect(cancelled.stderr).toContain('canceling statement due to user request');
    await vi.waitFor(() => {
      const completed = t.gw.store.query({ types: ['statement.completed'], limit: 20, order: 'desc' }).find((e) => e.data.sqlstate === '57014');
      expect(completed).toBeDefined();
    });
  });
});
