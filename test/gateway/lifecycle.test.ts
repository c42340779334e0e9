import { randomUUID } from 'node:crypto';
import { mkdtempSync, chmodSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { stringify } from 'yaml';
import { SqliteAuditStore } from '../../src/audit/sqlite-audit-store.js';
import { loadConfigFile } from '../../src/config/load.js';
import type { AuditEvent } from '../../src/events/types.js';
import { Keyring } from '../../src/keys/keyring.js';
import { devIssuerFor } from '../../src/runtime/build-state.js';
import { pgClient, psql, runClient } from '../support/clients.js';
import { baseConfig, startGateway, type TestGateway } from '../support/gateway.js';
import { testPostgres } from '../support/pg-env.js';
import { secretEnv, spawnCli } from '../cli/run-cli.js';
import { configFingerprint } from '../../src/config/fingerprint.js';

type PgError = Error & { code?: string };

const t0 = testPostgres();

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function gateway(mutate?: (cfg: Record<string, any>) => void): Promise<TestGateway> {
  const t = await startGateway(mutate);
  cleanups.push(() => t.stop());
  return t;
}

/** A client through Sluice whose asynchronous FATAL (termination) is captured rather than thrown. */
async function watched(t: TestGateway, grant: string, token: string, opts: Partial<pg.ClientConfig> = {}): Promise<{ client: pg.Client; ended: Promise<PgError> }> {
  const client = await pgClient(t, grant, token, opts);
  const ended = new Promise<PgError>((resolve) => client.on('error', resolve));
  cleanups.push(() => client.end().catch(() => undefined));
  return { client, ended };
}

async function connectError(t: TestGateway, grant: string, token: string): Promise<PgError> {
  const err = await pgClient(t, grant, token).then(
    async (c) => {
      await c.end();
      throw new Error('the connection was expected to be refused');
    },
    (e: PgError) => e,
  );
  return err;
}

/** A superuser connection straight to the test cluster, bypassing Sluice. */
async function superuser(): Promise<pg.Client> {
  const env = testPostgres();
  const c = new pg.Client({ host: env.host, port: env.port, user: env.superuser.user, password: env.superuser.password, database: env.database });
  await c.connect();
  cleanups.push(() => c.end().catch(() => undefined));
  return c;
}

function sessionEvents(t: TestGateway, sessionId: string): AuditEvent[] {
  return t.gw.store.query({ sessionId, limit: 1000 });
}

describe('configuration reload', () => {
  it('ends sessions the new policy no longer allows and keeps the others', async () => {
    const t = await gateway();
    const bob = await watched(t, 'read', await t.token('bob', ['dev']), { application_name: 'bob-reload' });
    const alice = await watched(t, 'read', await t.token('alice', ['dba']));
    await bob.client.query('select 1');

    const cfg = baseConfig(t.pg, t.dir) as Record<string, any>;
    cfg.policies = cfg.policies.filter((p: { name: string }) => p.name !== 'dev-read');
    t.writeConfig(cfg);
    const result = await t.gw.reload();
    expect(result).toEqual({ ok: true, terminated: 1 });

    const err = await bob.ended;
    expect(err.code).toBe('42501');
    expect(err.message).toBe('session ended after a configuration reload: no policy allows grant read on resource orders for subject bob (groups: dev)');
    const still = await alice.client.query('select 42 as answer');
    expect(still.rows).toEqual([{ answer: 42 }]);

    const refused = await connectError(t, 'read', await t.token('bob', ['dev']));
    expect(refused.code).toBe('42501');
    const reloaded = t.gw.store.query({ types: ['config.reloaded'], limit: 10 });
    expect(reloaded.at(-1)?.data).toMatchObject({ file: t.configFile, sessionsTerminated: 1 });
    // The configuration in force is recorded by hash at start and at every reload; a policy change changes both hashes.
    const [loaded] = t.gw.store.query({ types: ['config.loaded'], limit: 10 });
    const { config } = loadConfigFile(t.configFile);
    expect(reloaded.at(-1)?.data).toMatchObject(configFingerprint(config));
    expect(loaded?.data).toMatchObject({ file: t.configFile, configHash: expect.stringMatching(/^[0-9a-f]{64}$/), policiesHash: expect.stringMatching(/^[0-9a-f]{64}$/) });
    expect((loaded!.data as { policiesHash: string }).policiesHash).not.toBe(configFingerprint(config).policiesHash);
    expect(t.logs.join('')).toContain('"msg":"configuration reloaded"');
  });

  it('applies a tightened max_session_duration to sessions already open', async () => {
    const t = await gateway();
    const alice = await watched(t, 'read', await t.token('alice', ['dba']));
    const cfg = baseConfig(t.pg, t.dir) as Record<string, any>;
    cfg.policies[0].max_session_duration = '1s';
    t.writeConfig(cfg);
    expect(await t.gw.reload()).toEqual({ ok: true, terminated: 0 });
    const err = await alice.ended;
    expect(err).toMatchObject({ code: '57P01', message: 'the session reached its max_session_duration; reconnect with a fresh token' });
  });

  it('refuses an invalid file and keeps the old configuration', async () => {
    const t = await gateway();
    const cfg = baseConfig(t.pg, t.dir) as Record<string, any>;
    cfg.policies = [];
    cfg.server.bogus_key = true;
    t.writeConfig(cfg);
    const result = await t.gw.reload();
    expect(result.ok).toBe(false);
    expect(result.error).toContain('server: unknown key bogus_key');
    expect(result.terminated).toBe(0);

    expect(t.gw.state().config.policies.map((p) => p.name)).toContain('dev-read');
    const c = await pgClient(t, 'read', await t.token('bob', ['dev']));
    expect((await c.query('select 1 as one')).rows).toEqual([{ one: 1 }]);
    await c.end();

    const rejected = t.gw.store.query({ types: ['config.rejected'], limit: 10 });
    expect(rejected).toHaveLength(1);
    expect(rejected[0].data).toMatchObject({ file: t.configFile });
    expect(String(rejected[0].data.error)).toContain('bogus_key');
    expect(t.logs.join('')).toContain('configuration reload refused; the previous configuration stays in effect');

    // A missing secret is refused the same way: nothing of the new version is half-applied.
    delete cfg.server.bogus_key;
    cfg.resources[0].credentials.read.password = '${env:SLUICE_TEST_NOT_SET}';
    t.writeConfig(cfg);
    const missing = await t.gw.reload();
    expect(missing.ok).toBe(false);
    expect(missing.error).toContain('resources[0].credentials.read.password: environment variable SLUICE_TEST_NOT_SET is not set');
    expect(t.gw.state().config.policies).toHaveLength(4);
  });

  it('picks up a rotated backend secret for new sessions', async () => {
    const role = `sluice_rotate_${randomUUID().slice(0, 8)}`;
    const su = await superuser();
    await su.query(`create role ${role} login password 'rotate-old-secret'`);
    cleanups.push(async () => {
      const c = await superuser();
      await c.query(`drop role if exists ${role}`);
    });
    process.env.SLUICE_TEST_ROTATE_PW = 'rotate-old-secret';
    const t = await gateway((c) => {
      c.resources[0].credentials.read = { user: role, password: '${env:SLUICE_TEST_ROTATE_PW}' };
    });
    const token = await t.token('alice', ['dba']);
    const before = await watched(t, 'read', token);
    expect((await before.client.query('select current_user as u')).rows).toEqual([{ u: role }]);

    await su.query(`alter role ${role} password 'rotate-new-secret'`);
    const stale = await connectError(t, 'read', token);
    expect(stale.code).toBe('08001');
    expect(stale.message).toBe('Sluice could not connect to resource "orders"; try again later or tell the Sluice operator');

    process.env.SLUICE_TEST_ROTATE_PW = 'rotate-new-secret';
    expect(await t.gw.reload()).toEqual({ ok: true, terminated: 0 });
    const after = await pgClient(t, 'read', token);
    expect((await after.query('select current_user as u')).rows).toEqual([{ u: role }]);
    await after.end();
    // The session opened with the old secret is authenticated already and keeps running.
    expect((await before.client.query('select 1 as one')).rows).toEqual([{ one: 1 }]);

    const joined = t.logs.join('');
    expect(joined).not.toContain('rotate-old-secret');
    expect(joined).not.toContain('rotate-new-secret');
  });

  it('reloads on SIGHUP when run by "sluice start"', async () => {
    const env = testPostgres();
    const dir = mkdtempSync(join(tmpdir(), 'sluice-sighup-'));
    chmodSync(dir, 0o755);
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'sluice.yaml');
    const cfg = baseConfig(env, dir) as Record<string, any>;
    cfg.server.watch_config = false;
    writeFileSync(file, stringify(cfg));

    const child = spawnCli(['start', '--config', file], secretEnv());
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    cleanups.push(async () => {
      if (child.exitCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
    });
    const lines: Array<Record<string, any>> = [];
    let stderr = '';
    let partial = '';
    child.stdout!.on('data', (d: Buffer) => {
      const parts = (partial + d.toString()).split('\n');
      partial = parts.pop()!;
      for (const l of parts) if (l.trim()) lines.push(JSON.parse(l));
    });
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const logged = (msg: string) =>
      vi.waitFor(
        () => {
          const line = lines.find((l) => l.msg === msg);
          expect(line, `${msg}; stderr: ${stderr}`).toBeDefined();
          return line!;
        },
        { timeout: 20_000, interval: 50 },
      );

    const started = await logged('sluice started');
    const port: number = started.postgres.port;
    const { config } = loadConfigFile(file);
    const dev = devIssuerFor(config, await Keyring.load(config.keys, config.store.data_dir))!;
    const bob = await dev.mint({ subject: 'bob', groups: ['dev'] });
    const url = `postgresql://read@127.0.0.1:${port}/orders?sslmode=require`;
    const run = () => runClient(join(env.binDir, 'psql'), ['-X', '-At', url, '-c', 'select 7'], { PGPASSWORD: bob });

    expect((await run()).stdout.trim()).toBe('7');
    const open = new pg.Client({ host: '127.0.0.1', port, user: 'read', database: 'orders', password: bob, ssl: { rejectUnauthorized: false } });
    await open.connect();
    cleanups.push(() => open.end().catch(() => undefined));
    const ended = new Promise<PgError>((resolve) => open.on('error', resolve));

    cfg.policies = cfg.policies.filter((p: { name: string }) => p.name !== 'dev-read');
    writeFileSync(file, stringify(cfg));
    child.kill('SIGHUP');
    const reloaded = await logged('configuration reloaded');
    expect(reloaded.level).toBe(30);
    expect(reloaded.terminated).toBeGreaterThanOrEqual(1);
    expect(await ended).toMatchObject({ code: '42501', message: expect.stringContaining('session ended after a configuration reload: no policy allows grant read') });
    const refused = await run();
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain('FATAL:  no policy allows grant read on resource orders for subject bob (groups: dev)');

    writeFileSync(file, 'server: [not, a, mapping\n');
    child.kill('SIGHUP');
    const bad = await logged('configuration reload refused; the previous configuration stays in effect');
    expect(bad.level).toBe(50);
    expect((await run()).stderr).toContain('no policy allows grant read');

    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(lines.map((l) => l.msg)).toContain('sluice stopped');
  });
});

describe('session limits', () => {
  it('ends a session at max_session_duration', async () => {
    const t = await gateway((c) => {
      c.policies[0].max_session_duration = '1s';
    });
    const { client, ended } = await watched(t, 'read', await t.token('alice', ['dba']));
    // On a loaded machine the second may already be over when the query is sent: then the query fails with the same error.
    await client.query('select 1').catch(() => undefined);
    const err = await ended;
    expect(err.code).toBe('57P01');
    expect(err.message).toBe('the session reached its max_session_duration; reconnect with a fresh token');
    const opened = t.gw.store.query({ types: ['session.opened'], limit: 1 })[0];
    expect(opened.data.endsAt).toBeDefined();
    await vi.waitFor(() => {
      const types = sessionEvents(t, opened.sessionId!).map((e) => [e.type, e.data.reason]);
      expect(types).toContainEqual(['session.terminated', 'session_duration_exceeded']);
      expect(types.at(-1)).toEqual(['session.closed', 'session_duration_exceeded']);
    });
  });

  it('ends a psql session at max_session_duration in the middle of a statement', async () => {
    const t = await gateway((c) => {
      c.policies[0].max_session_duration = 1;
    });
    const r = await psql(t, t.url('read'), await t.token('alice', ['dba']), ['-c', 'select pg_sleep(20)']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('FATAL:  the session reached its max_session_duration; reconnect with a fresh token');
  });

  it('refuses sessions past max_sessions_per_principal and max_sessions with 53300', async () => {
    const t = await gateway((c) => {
      c.resources[0].limits = { max_sessions: 2, max_sessions_per_principal: 1 };
    });
    const alice = await t.token('alice', ['dba']);
    const first = await watched(t, 'read', alice);

    const again = await connectError(t, 'write', alice);
    expect(again.code).toBe('53300');
    expect(again.message).toBe('you have reached the limit of 1 sessions on resource "orders"; close some and try again');

    await watched(t, 'read', await t.token('bob', ['dev']));
    const third = await connectError(t, 'read', await t.token('dave', ['dba']));
    expect(third.code).toBe('53300');
    expect(third.message).toBe('resource "orders" has reached its limit of 2 sessions; try again later');

    await first.client.end();
    await vi.waitFor(() => expect(t.gw.registry.list().filter((x) => x.resource === 'orders')).toHaveLength(1));
    const later = await pgClient(t, 'read', alice);
    await later.end();
    const reasons = t.gw.store.query({ types: ['session.refused'], limit: 10 }).map((e) => e.data.reason);
    expect(reasons).toEqual(['principal_session_limit', 'resource_session_limit']);
  });
});

describe('limits under concurrent connects', () => {
  it('never lets concurrent connects overshoot max_sessions', async () => {
    const t = await gateway((c) => {
      c.resources[0].limits = { max_sessions: 1, max_sessions_per_principal: 10 };
    });
    const tokens = await Promise.all(Array.from({ length: 6 }, (_, i) => t.token(`racer${i}`, ['dba'])));
    const results = await Promise.allSettled(tokens.map((tk) => pgClient(t, 'read', tk)));
    const opened = results.filter((r) => r.status === 'fulfilled');
    expect(opened).toHaveLength(1);
    for (const r of results) {
      if (r.status === 'rejected') expect(String((r.reason as Error).message)).toContain('has reached its limit of 1 sessions');
    }
    await (opened[0] as PromiseFulfilledResult<Awaited<ReturnType<typeof pgClient>>>).value.end();
  });
});

describe('an audit store that cannot write', () => {
  it('refuses the statement, leaves the table unchanged, and recovers once the lock is gone', async () => {
    const t = await gateway((c) => {
      c.store.busy_timeout = 0.2;
    });
    const table = `lock_probe_${randomUUID().slice(0, 8)}`;
    const su = await superuser();
    await su.query(`create table ${table} (id int)`);
    await su.query(`grant select, insert on ${table} to ${t.pg.roles.writer.user}`);
    cleanups.push(async () => {
      const c = await superuser();
      await c.query(`drop table if exists ${table}`);
    });
    const count = async () => Number((await su.query(`select count(*) as n from ${table}`)).rows[0].n);
    const token = await t.token('alice', ['dba']);
    const { client } = await watched(t, 'write', token);

    const lock = new Database(join(t.dir, 'sluice.db'));
    cleanups.push(() => lock.open && lock.close());
    lock.exec('BEGIN EXCLUSIVE');
    try {
      const err = await client.query(`insert into ${table} values (1)`).then(
        () => undefined,
        (e: PgError) => e,
      );
      expect(err?.code).toBe('58000');
      expect(err?.message).toBe('the audit log could not record this statement, so it was not run; try again later and tell the Sluice operator');
      expect(await count()).toBe(0);

      const ready = await fetch(`${t.httpUrl}/readyz`);
      expect(ready.status).toBe(503);
      expect(await ready.json()).toEqual({ status: 'not ready', reasons: ['the audit store cannot write'] });

      const refused = await connectError(t, 'read', token);
      expect(refused.code).toBe('58000');
      expect(refused.message).toContain('the audit log cannot record new sessions right now');
      const viaPsql = await psql(t, t.url('read'), token, ['-c', 'select 1']);
      expect(viaPsql.stderr).toContain('FATAL:  the audit log cannot record new sessions right now');
    } finally {
      lock.exec('ROLLBACK');
      lock.close();
    }
    // A gateway out of rotation writes nothing; readiness must notice by itself that the store works again.
    expect((await fetch(`${t.httpUrl}/readyz`)).status).toBe(200);

    const ok = await client.query(`insert into ${table} values (2)`);
    expect(ok.rowCount).toBe(1);
    expect((await su.query(`select id from ${table}`)).rows).toEqual([{ id: 2 }]);
    expect((await fetch(`${t.httpUrl}/readyz`)).status).toBe(200);
    const texts = t.gw.store.query({ types: ['statement.started'], text: table, limit: 10 }).map((e) => e.data.text);
    expect(texts).toEqual([`insert into ${table} values (2)`]);
  });
});

describe('secrets stay secret', () => {
  it('keeps backend passwords and tokens out of logs, events and client messages', async () => {
    process.env.SLUICE_TEST_BROKEN_PW = 'wrong-password-7f3a9c1e';
    const t = await gateway((c) => {
      c.resources.push({
        name: 'broken',
        type: 'postgres',
        upstream: { host: t0.host, port: t0.port, database: t0.database, tls: { mode: 'require' } },
        credentials: { read: { user: t0.roles.reader.user, password: '${env:SLUICE_TEST_BROKEN_PW}' } },
      });
    });
    const seen: string[] = [];
    const tokens: string[] = [];
    const mint = async (subject: string, groups: string[]) => {
      const tok = await t.token(subject, groups);
      tokens.push(tok);
      return tok;
    };
    const alice = await mint('alice', ['dba']);
    const bob = await mint('bob', ['dev']);
    const forged = alice.replace(/\.[^.]+$/, '.' + 'B'.repeat(86));
    tokens.push(forged);

    const runs = [
      await psql(t, t.url('read'), alice, ['-c', 'select count(*) from customers']),
      await psql(t, t.url('read'), alice, ['-c', 'select * from no_such_table']),
      await psql(t, t.url('read'), alice, ['-c', "update customers set name = 'x' where id = 1"]),
      await psql(t, t.url('read', 'broken'), alice, ['-c', 'select 1']),
      await psql(t, t.url('write'), bob, ['-c', 'select 1']),
      await psql(t, t.url('read'), forged, ['-c', 'select 1']),
      await psql(t, t.url('read'), 'not-a-jwt-but-a-secret-9d8c7b', ['-c', 'select 1']),
    ];
    tokens.push('not-a-jwt-but-a-secret-9d8c7b');
    for (const r of runs) seen.push(r.stdout, r.stderr);
    expect(runs[3].stderr).toContain('FATAL:  Sluice could not connect to resource "broken"');
    expect(runs[5].stderr).toContain('FATAL:  authentication failed: ');
    for (const tok of tokens) {
      const r = await fetch(`${t.httpUrl}/api/v1/whoami`, { headers: { authorization: `Bearer ${tok}` } });
      seen.push(await r.text());
    }
    await vi.waitFor(() => expect(t.gw.registry.size).toBe(0));

    const all: AuditEvent[] = [];
    for (let after = 0; ; ) {
      const page = t.gw.store.query({ afterSeq: after, limit: 1000 });
      if (page.length === 0) break;
      all.push(...page);
      after = page[page.length - 1].seq;
    }
    expect(all.map((e) => e.type)).toEqual(expect.arrayContaining(['session.opened', 'statement.completed', 'session.refused']));
    expect(all.filter((e) => e.type === 'session.refused').map((e) => e.data.reason)).toEqual(
      expect.arrayContaining(['backend_unavailable', 'grant_not_allowed', 'signature_invalid', 'token_malformed']),
    );
    expect(t.logs.join('')).toContain('backend connection failed');

    const secrets = [
      ...Object.values(t0.roles).map((r) => r.password),
      t0.superuser.password,
      'wrong-password-7f3a9c1e',
      ...tokens.flatMap((tok) => tok.split('.').slice(1).filter((part) => part.length >= 16)),
      'not-a-jwt-but-a-secret-9d8c7b',
    ];
    const haystacks: Array<[string, string]> = [
      ['logs', t.logs.join('')],
      ['audit events', JSON.stringify(all)],
      ['client output', seen.join('\n')],
    ];
    for (const [where, text] of haystacks) {
      for (const secret of secrets) expect(text.includes(secret), `${where} contain a secret`).toBe(false);
    }
  });
});

describe('graceful shutdown', () => {
  it('refuses new connections, ends idle sessions after the grace period, and flushes the store', async () => {
    const t = await gateway();
    const token = await t.token('alice', ['dba']);
    const { client, ended } = await watched(t, 'read', token);
    await client.query('select 1 /* before-shutdown */');
    const opened = t.gw.store.query({ types: ['session.opened'], limit: 1 })[0];

    const stopping = t.gw.stop(2);
    const ready = await fetch(`${t.httpUrl}/readyz`);
    expect(ready.status).toBe(503);
    expect((await ready.json()).reasons).toContain('shutting down');
    const refused = await connectError(t, 'read', token);
    expect(refused.code).toBe('ECONNREFUSED');

    const err = await ended;
    expect(err.code).toBe('57P01');
    expect(err.message).toBe('Sluice is shutting down; reconnect in a moment');
    await stopping;
    expect(t.logs.join('')).toContain('"msg":"sluice stopped"');

    const store = SqliteAuditStore.open({ path: join(t.dir, 'sluice.db'), synchronous: 'normal' });
    try {
      const events = store.query({ sessionId: opened.sessionId, limit: 100 });
      expect(events.map((e) => e.type)).toEqual(['session.opened', 'statement.started', 'statement.completed', 'session.terminated', 'session.closed']);
      expect(events.at(-1)!.data.reason).toBe('gateway_shutdown');
    } finally {
      await store.close();
    }
  });
});

