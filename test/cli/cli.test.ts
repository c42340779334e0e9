import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { stringify } from 'yaml';
import { SqliteAuditStore } from '../../src/audit/sqlite-audit-store.js';
import type { AuditEvent } from '../../src/events/types.js';
import type { SessionSummary } from '../../src/sessions/session.js';
import { pgClient, psql } from '../support/clients.js';
import { baseConfig, startGateway, type TestGateway } from '../support/gateway.js';
import { runCli, secretEnv } from './run-cli.js';

// Every CLI run is a fresh Node process compiling TypeScript; on a busy 2-core machine a few of them take a while.
vi.setConfig({ testTimeout: 90_000 });

let t: TestGateway;
let scratch: string;
beforeAll(async () => {
  t = await startGateway();
  scratch = mkdtempSync(join(tmpdir(), 'sluice-cli-'));
});
afterAll(async () => {
  await t?.stop();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

/** Flags that point an API command at the in-process gateway as an auditor. */
function asAuditor(): string[] {
  return ['--url', t.httpUrl, '--config', t.configFile, '--as', 'carol', '--as-groups', 'auditor'];
}

function writeYaml(name: string, doc: unknown): string {
  const file = join(scratch, name);
  writeFileSync(file, typeof doc === 'string' ? doc : stringify(doc));
  return file;
}

/** A closed psql session by `subject` whose statement carries `marker`. */
async function session(subject: string, marker: string): Promise<AuditEvent> {
  const r = await psql(t, t.url('read'), await t.token(subject, ['dba']), ['-c', `select 1 /* ${marker} */`]);
  expect(r.stderr).toBe('');
  return vi.waitFor(() => {
    const [started] = t.gw.store.query({ types: ['statement.started'], text: marker, limit: 1 });
    expect(started).toBeDefined();
    expect(t.gw.store.query({ sessionId: started.sessionId, types: ['session.closed'], limit: 1 })).toHaveLength(1);
    return started;
  });
}

describe('sluice config check', () => {
  it('says a good file is valid', async () => {
    const r = await runCli(['config', 'check', '--config', t.configFile], secretEnv());
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${t.configFile}: valid (1 resources, 4 policies, 0 issuers + development issuer)\n`);
  });

  it('exits 2 naming the path of every bad key', async () => {
    const cfg = baseConfig(t.pg, scratch) as Record<string, any>;
    cfg.resources[0].upstream.port = '5432x';
    cfg.policies[0].when = 'dba';
    cfg.server.postgres.lisen = '127.0.0.1:6432';
    const r = await runCli(['config', 'check', '--config', writeYaml('bad.yaml', cfg)], secretEnv());
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('sluice: invalid configuration\n');
    expect(r.stderr).toContain('  resources[0].upstream.port: expected a number\n');
    expect(r.stderr).toContain('  policies[0].when: expected an object\n');
    expect(r.stderr).toContain('  server.postgres: unknown key lisen\n');
  });

  it('exits 2 for rules that span keys and for broken YAML', async () => {
    const cfg = baseConfig(t.pg, scratch) as Record<string, any>;
    cfg.policies[0].when = {};
    cfg.policies[1].resources = ['orders', 'billing'];
    const r = await runCli(['config', 'check', '--config', writeYaml('cross.yaml', cfg)], secretEnv());
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('policies[0].when: name at least one of issuer, subjects, groups, kind, claims');
    expect(r.stderr).toContain('policies[1].resources[1]: unknown resource billing');

    const yaml = await runCli(['config', 'check', '--config', writeYaml('broken.yaml', 'server: [oops\n')], secretEnv());
    expect(yaml.code).toBe(2);
    expect(yaml.stderr).toContain('(root): YAML: ');

    const missing = await runCli(['config', 'check', '--config', join(scratch, 'absent.yaml')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain(`cannot read ${join(scratch, 'absent.yaml')}: ENOENT`);
  });

  it('names a secret reference whose environment variable is not set, without printing any secret', async () => {
    const env = secretEnv();
    delete env.SLUICE_TEST_WRITER_PW;
    const r = await runCli(['config', 'check', '--config', t.configFile], env);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      'sluice: resources[0].credentials.write.password: environment variable SLUICE_TEST_WRITER_PW is not set; export it before starting Sluice [secret_missing]\n',
    );
    for (const secret of Object.values(env)) expect(r.stderr).not.toContain(secret);
  });
});

describe('sluice token', () => {
  it('prints a JWT that the running gateway accepts', async () => {
    const r = await runCli(['token', '--subject', 'x', '--groups', 'dba,b', '--config', t.configFile]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const token = r.stdout.trim();
    expect(token).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);

    const whoami = await fetch(`${t.httpUrl}/api/v1/whoami`, { headers: { authorization: `Bearer ${token}` } });
    expect(await whoami.json()).toMatchObject({ subject: 'x', groups: ['dba', 'b'], kind: 'person' });
    const q = await psql(t, t.url('read'), token, ['-c', 'select current_user']);
    expect(q.stdout.trim()).toBe(t.pg.roles.reader.user);
  });

  it('refuses bad options with a message saying what to pass', async () => {
    const kind = await runCli(['token', '--subject', 'x', '--kind', 'robot', '--config', t.configFile]);
    expect(kind.code).toBe(1);
    expect(kind.stderr).toBe('sluice: --kind must be person or machine [token_kind_invalid]\n');
    const ttl = await runCli(['token', '--subject', 'x', '--ttl', 'soon', '--config', t.configFile]);
    expect(ttl.code).toBe(1);
    expect(ttl.stderr).toContain('--ttl: expected a duration such as 15m or 1h');

    const cfg = baseConfig(t.pg, scratch) as Record<string, any>;
    cfg.identity.dev_issuer.enabled = false;
    const off = await runCli(['token', '--subject', 'x', '--config', writeYaml('no-dev.yaml', cfg)]);
    expect(off.code).toBe(1);
    expect(off.stderr).toContain('the development issuer is off');
  });
});

describe('sluice audit', () => {
  it('tails the latest events of a running gateway', async () => {
    const marker = `cli-tail-${randomUUID().slice(0, 8)}`;
    const started = await session('tail-user', marker);
    const r = await runCli(['audit', 'tail', '-n', '4', ...asAuditor()]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(4);
    const mine = lines.filter((l) => l.includes(started.sessionId!.slice(0, 8)));
    expect(mine.map((l) => l.split(/\s+/)[3])).toEqual(['session.opened', 'statement.started', 'statement.completed', 'session.closed']);
    expect(mine[0]).toContain('tail-user');
    expect(mine[0]).toContain('grant=read policy=dba');
    expect(mine[1]).toContain(`select 1 /* ${marker} */`);
    expect(mine[2]).toContain('SELECT 1');

    const json = await runCli(['audit', 'tail', '-n', '2', '--json', ...asAuditor()]);
    const events = json.stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as AuditEvent);
    expect(events.map((e) => e.type)).toEqual(['statement.completed', 'session.closed']);
    expect(events[0].seq).toBeLessThan(events[1].seq);
  });

  it('searches by type, subject and text', async () => {
    const marker = `cli-search-${randomUUID().slice(0, 8)}`;
    await session('search-user', marker);
    const r = await runCli(['audit', 'search', '--type', 'session.opened', '--json', ...asAuditor()]);
    expect(r.code).toBe(0);
    const events = r.stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as AuditEvent);
    expect(events.length).toBeGreaterThan(0);
    expect(events.every((e) => e.type === 'session.opened')).toBe(true);
    expect(events.map((e) => e.principal?.subject)).toContain('search-user');

    const text = await runCli(['audit', 'search', '--subject', 'search-user', '-q', marker, ...asAuditor()]);
    const lines = text.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/statement\.started .* search-user +orders +select 1/);
  });

  it('reports a missing permission and an unreachable API', async () => {
    const denied = await runCli(['audit', 'tail', '--url', t.httpUrl, '--config', t.configFile, '--as', 'bob', '--as-groups', 'dev']);
    expect(denied.code).toBe(1);
    expect(denied.stderr).toBe('sluice: no policy grants permission audit:read to subject bob (groups: dev) [permission_denied]\n');

    const down = await runCli(['audit', 'tail', '--url', 'http://127.0.0.1:9', '--token', 'x.y.z']);
    expect(down.code).toBe(1);
    expect(down.stderr).toContain('cannot reach the Sluice API at http://127.0.0.1:9');
    expect(down.stderr).toContain('[api_unreachable]');

    const badToken = await runCli(['audit', 'tail', '--url', t.httpUrl, '--token', 'not-a-jwt-secret-5e4d']);
    expect(badToken.code).toBe(1);
    expect(badToken.stderr).toContain('authentication failed: the token is not a JWT');
    expect(badToken.stderr).not.toContain('not-a-jwt-secret-5e4d');
  });
});

describe('sluice sessions', () => {
  it('lists live sessions and terminates one', async () => {
    const client = await pgClient(t, 'read', await t.token('alice', ['dba']), { application_name: 'cli-sessions' });
    const ended = new Promise<Error & { code?: string }>((resolve) => client.on('error', resolve));
    try {
      const json = await runCli(['sessions', 'list', '--json', ...asAuditor()]);
      expect(json.code).toBe(0);
      const live = (JSON.parse(json.stdout) as SessionSummary[]).find((s) => s.applicationName === 'cli-sessions');
      expect(live).toMatchObject({ principal: { subject: 'alice' }, resource: 'orders', grant: 'read' });

      const table = await runCli(['sessions', 'list', ...asAuditor()]);
      const line = table.stdout.split('\n').find((l) => l.startsWith(live!.id));
      expect(line).toMatch(new RegExp(`^${live!.id}  alice +orders +read +since ${live!.openedAt}  0 statements$`));

      const kill = await runCli(['sessions', 'terminate', live!.id, ...asAuditor()]);
      expect(kill.stdout).toBe(`terminated ${live!.id}\n`);
      const err = await ended;
      expect(err.code).toBe('57P01');
      expect(err.message).toBe('the session was ended by carol through the Sluice API');

      const again = await runCli(['sessions', 'terminate', live!.id, ...asAuditor()]);
      expect(again.code).toBe(1);
      expect(again.stderr).toBe(`sluice: no live session ${live!.id} [session_not_found]\n`);
    } finally {
      await client.end().catch(() => undefined);
    }
  });
});

describe('sluice store backup', () => {
  it('writes a consistent, private copy that opens as a store', async () => {
    const marker = `cli-backup-${randomUUID().slice(0, 8)}`;
    await session('backup-user', marker);
    const dest = join(scratch, 'backups', 'sluice-copy.db');
    const r = await runCli(['store', 'backup', dest, '--config', t.configFile]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`backup of ${join(t.dir, 'sluice.db')} written to ${dest}\n`);
    expect(statSync(dest).mode & 0o077).toBe(0);

    const main = SqliteAuditStore.open({ path: dest, synchronous: 'normal' });
    try {
      const found = main.query({ text: marker, limit: 10 });
      expect(found.map((e) => e.data.text)).toEqual([`select 1 /* ${marker} */`]);
      expect(main.lastSeq()).toBeGreaterThanOrEqual(found[0].seq);
    } finally {
      await main.close();
    }
  });

  it('says so when the store does not exist or the copy cannot be written', async () => {
    const cfg = baseConfig(t.pg, join(scratch, 'empty-data')) as Record<string, any>;
    const r = await runCli(['store', 'backup', join(scratch, 'x.db'), '--config', writeYaml('empty.yaml', cfg)]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`cannot open the store ${join(scratch, 'empty-data', 'sluice.db')}`);
    expect(r.stderr).toContain('[store_unreadable]');

    const blocker = writeYaml('not-a-dir', 'plain file');
    const unwritable = await runCli(['store', 'backup', join(blocker, 'copy.db'), '--config', t.configFile]);
    expect(unwritable.code).toBe(1);
    expect(unwritable.stderr).toContain(`sluice: cannot write the backup to ${join(blocker, 'copy.db')}`);
    expect(unwritable.stderr).toContain('[store_backup_failed]');
  });
});
