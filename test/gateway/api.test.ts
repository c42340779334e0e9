import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { decodeProtectedHeader } from 'jose';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { AuditEvent } from '../../src/events/types.js';
import type { SessionSummary } from '../../src/sessions/session.js';
import { startGateway, type TestGateway } from '../support/gateway.js';
import { pgClient, psql } from '../support/clients.js';

let t: TestGateway;
let auditor: string;
let alice: string;
let bob: string;

beforeAll(async () => {
  t = await startGateway((c) => {
    c.policies.push({ name: 'no-audit-for-interns', effect: 'deny', when: { groups: ['intern'] }, permissions: ['audit:read'] });
  });
  auditor = await t.token('carol', ['auditor']);
  alice = await t.token('alice', ['dba']);
  bob = await t.token('bob', ['dev']);
});
afterAll(async () => {
  await t?.stop();
});

interface ApiError {
  error: { code: string; message: string };
}

async function api<T = unknown>(path: string, token?: string, init: RequestInit = {}): Promise<{ status: number; body: T; headers: Headers }> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  const res = await fetch(t.httpUrl + path, { ...init, headers: { ...headers, ...(init.headers as Record<string, string> | undefined) } });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: (text.startsWith('{') ? JSON.parse(text) : text) as T };
}

type Page = { events: AuditEvent[]; next: { after_seq?: number; before_seq?: number } | null };

function events(query: Record<string, string | number>): Promise<{ status: number; body: Page }> {
  const qs = new URLSearchParams(Object.entries(query).map(([k, v]) => [k, String(v)]));
  return api<Page>(`/api/v1/audit/events?${qs}`, auditor);
}

/** Runs psql sessions for alice and bob whose statements carry `marker`; resolves once both sessions are closed in the log. */
async function traffic(marker: string): Promise<void> {
  const a = await psql(t, t.url('read'), alice, ['-c', `select 1 /* ${marker} a1 */`, '-c', `select 2 /* ${marker} a2 */`]);
  expect(a.stderr).toBe('');
  const b = await psql(t, t.url('read'), bob, ['-c', `select 3 /* ${marker} b1 */`]);
  expect(b.stderr).toBe('');
  await vi.waitFor(() => {
    const started = t.gw.store.query({ types: ['statement.started'], text: marker, limit: 10 });
    expect(started).toHaveLength(3);
    for (const id of new Set(started.map((e) => e.sessionId))) {
      expect(t.gw.store.query({ sessionId: id, types: ['session.closed'], limit: 1 })).toHaveLength(1);
    }
  });
}

describe('API authentication', () => {
  it('answers 401 without a bearer token, saying how to send one', async () => {
    const variants: Array<Record<string, string>> = [{}, { authorization: 'Basic YWxpY2U6c2VjcmV0' }, { authorization: 'Bearer' }];
    for (const headers of variants) {
      const r = await api<ApiError>('/api/v1/whoami', undefined, { headers });
      expect(r.status).toBe(401);
      expect(r.headers.get('www-authenticate')).toBe('Bearer');
      expect(r.body).toEqual({ error: { code: 'token_missing', message: 'send an identity token as "Authorization: Bearer <token>"' } });
    }
  });

  it('answers 401 for bad tokens without echoing them', async () => {
    const forged = alice.replace(/\.[^.]+$/, '.' + 'A'.repeat(86));
    const cases: Array<[string, string]> = [
      ['opaque-token-3f9a1c7e5b2d4f60', 'token_malformed'],
      [forged, 'signature_invalid'],
      [alice.split('.').reverse().join('.'), 'token_malformed'],
    ];
    for (const [token, code] of cases) {
      const r = await api<ApiError>('/api/v1/whoami', token);
      expect(r.status).toBe(401);
      expect(r.headers.get('www-authenticate')).toBe('Bearer error="invalid_token"');
      expect(r.body.error.code).toBe(code);
      expect(r.body.error.message).toMatch(/^authentication failed: /);
      for (const part of token.split('.')) expect(r.body.error.message).not.toContain(part);
    }
  });

  it('never echoes any presented bearer value (property)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.stringMatching(/^[A-Za-z0-9._~+/=-]{12,300}$/), async (token) => {
        const r = await api<ApiError>('/api/v1/audit/events', token);
        expect(r.status).toBe(401);
        expect(Object.keys(r.body)).toEqual(['error']);
        expect(JSON.stringify(r.body)).not.toContain(token);
        for (const part of token.split('.').filter((p) => p.length >= 12)) expect(JSON.stringify(r.body)).not.toContain(part);
      }),
      { numRuns: 60 },
    );
  });

  it('tells a valid caller who they are', async () => {
    const r = await api<Record<string, unknown>>('/api/v1/whoami', alice);
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ subject: 'alice', kind: 'person', groups: ['dba'] });
  });
});

describe('API authorization', () => {
  it('answers 403 with the policy message for a caller without the permission', async () => {
    const noPolicy = await api<ApiError>('/api/v1/audit/events', bob);
    expect(noPolicy.status).toBe(403);
    expect(noPolicy.body).toEqual({
      error: { code: 'permission_denied', message: 'no policy grants permission audit:read to subject bob (groups: dev)' },
    });
    const denied = await api<ApiError>('/api/v1/audit/events', await t.token('ivan', ['auditor', 'intern']));
    expect(denied.status).toBe(403);
    expect(denied.body.error.message).toBe('policy "no-audit-for-interns" denies permission audit:read');

    const sessions = await api<ApiError>('/api/v1/sessions', bob);
    expect(sessions.status).toBe(403);
    expect(sessions.body.error.message).toContain('sessions:read');
    const kill = await api<ApiError>(`/api/v1/sessions/${randomUUID()}`, bob, { method: 'DELETE' });
    expect(kill.status).toBe(403);
    expect(kill.body.error.message).toContain('sessions:terminate');
  });
});

describe('audit events API', () => {
  const marker = `api-filter-${randomUUID().slice(0, 8)}`;
  let startedAt: string;

  beforeAll(async () => {
    startedAt = new Date().toISOString();
    await traffic(marker);
  });

  it('filters by type, subject, resource, session and text', async () => {
    const opened = await events({ type: 'session.opened', subject: 'alice', resource: 'orders', since: startedAt });
    expect(opened.status).toBe(200);
    expect(opened.body.events.length).toBeGreaterThanOrEqual(1);
    for (const e of opened.body.events) {
      expect(e).toMatchObject({ type: 'session.opened', resource: 'orders', principal: { subject: 'alice' } });
    }

    const text = await events({ q: marker });
    expect(text.body.events.map((e) => e.data.text)).toEqual([`select 1 /* ${marker} a1 */`, `select 2 /* ${marker} a2 */`, `select 3 /* ${marker} b1 */`]);

    const session = text.body.events[0].sessionId!;
    const one = await events({ session_id: session });
    expect(one.body.events.map((e) => e.type)).toEqual([
      'session.opened',
      'statement.started',
      'statement.completed',
      'statement.started',
      'statement.completed',
      'session.closed',
    ]);

    const several = await events({ type: 'statement.started,session.closed', subject: 'bob', since: startedAt });
    expect(new Set(several.body.events.map((e) => e.type))).toEqual(new Set(['statement.started', 'session.closed']));
    expect(several.body.events.every((e) => e.principal?.subject === 'bob')).toBe(true);

    expect((await events({ resource: 'nope' })).body.events).toEqual([]);
    expect((await events({ subject: 'nobody-at-all' })).body.events).toEqual([]);
  });

  it('filters by time window', async () => {
    const all = (await events({ q: marker })).body.events;
    const first = all[0];
    const last = all[all.length - 1];
    const window = await events({ q: marker, since: first.time, until: new Date(Date.parse(last.time) + 1).toISOString() });
    expect(window.body.events.map((e) => e.seq)).toEqual(all.map((e) => e.seq));
    expect((await events({ q: marker, since: new Date(Date.parse(last.time) + 1).toISOString() })).body.events).toEqual([]);
    expect((await events({ q: marker, until: first.time })).body.events).toEqual([]);
  });

  it('pages forward with after_seq and backward with before_seq', async () => {
    const expected = (await events({ since: startedAt, limit: 1000 })).body.events.map((e) => e.seq);
    expect(expected.length).toBeGreaterThan(5);

    const forward: number[] = [];
    let cursor: Record<string, number> = {};
    for (let pages = 0; pages < 50; pages++) {
      const r = await events({ since: startedAt, limit: 2, ...cursor });
      expect(r.status).toBe(200);
      forward.push(...r.body.events.map((e) => e.seq));
      if (!r.body.next) break;
      expect(r.body.next).toEqual({ after_seq: r.body.events[1].seq });
      cursor = r.body.next as Record<string, number>;
    }
    expect(forward).toEqual(expected);

    const backward: number[] = [];
    cursor = {};
    for (let pages = 0; pages < 50; pages++) {
      const r = await events({ since: startedAt, limit: 3, order: 'desc', ...cursor });
      backward.push(...r.body.events.map((e) => e.seq));
      if (!r.body.next) break;
      expect(Object.keys(r.body.next)).toEqual(['before_seq']);
      cursor = r.body.next as Record<string, number>;
    }
    expect(backward).toEqual([...expected].reverse());
  });

  it('answers 400 naming the bad parameter', async () => {
    const cases: Array<[string, string]> = [
      ['after_seq=-1', 'after_seq: expected a non-negative integer'],
      ['before_seq=1e3', 'before_seq: expected a non-negative integer'],
      ['limit=ten', 'limit: expected a non-negative integer'],
      ['limit=0', 'limit: expected 1 to 1000'],
      ['type=session.opened,bogus', 'type: unknown event type bogus'],
      ['since=yesterday', 'since: expected an ISO-8601 time'],
      ['until=2025-13-45T99:00:00Z', 'until: expected an ISO-8601 time'],
      ['order=sideways', 'order: expected asc or desc'],
      ['type=session.opened&type=session.closed', 'type: give it once'],
      ['subject=a&subject=b', 'subject: give it once'],
      [`q=${'x'.repeat(1001)}`, 'q: at most 1000 characters'],
    ];
    for (const [qs, message] of cases) {
      const r = await api<ApiError>(`/api/v1/audit/events?${qs}`, auditor);
      expect(r.status, qs).toBe(400);
      expect(r.body.error.code).toBe('query_invalid');
      expect(r.body.error.message).toContain(message);
    }
    const longest = await api<Page>(`/api/v1/audit/events?q=${'x'.repeat(1000)}`, auditor);
    expect(longest.status).toBe(200);
    expect(longest.body.events).toEqual([]);
  });

  it('treats LIKE wildcards and quotes in q as literal text', async () => {
    expect((await events({ q: '%' })).body.events.every((e) => JSON.stringify(e.data).includes('%'))).toBe(true);
    expect((await events({ q: marker.replace('-filter-', '_filter_') })).body.events).toEqual([]);
    expect((await events({ q: marker })).body.events.length).toBeGreaterThan(0);
    expect((await events({ q: `"'\\` })).status).toBe(200);
  });
});

describe('sessions API', () => {
  it('lists a live session with principal, resource and grant, and terminates it', async () => {
    const client = await pgClient(t, 'read', alice, { application_name: 'api-test' });
    const ended = new Promise<Error & { code?: string }>((resolve) => client.on('error', resolve));
    try {
      await client.query('select 1');
      const list = await api<{ sessions: SessionSummary[] }>('/api/v1/sessions', auditor);
      expect(list.status).toBe(200);
      const mine = list.body.sessions.find((s) => s.applicationName === 'api-test');
      expect(mine).toMatchObject({
        protocol: 'postgres',
        principal: { subject: 'alice', groups: ['dba'], kind: 'person' },
        resource: 'orders',
        grant: 'read',
        policy: 'dba',
        tls: true,
        statements: 1,
      });

      const del = await api<{ terminated: string }>(`/api/v1/sessions/${mine!.id}`, auditor, { method: 'DELETE' });
      expect(del.status).toBe(202);
      expect(del.body).toEqual({ terminated: mine!.id });
      const err = await ended;
      expect(err.code).toBe('57P01');
      expect(err.message).toBe('the session was ended by carol through the Sluice API');

      const after = await api<{ sessions: SessionSummary[] }>('/api/v1/sessions', auditor);
      expect(after.body.sessions.find((s) => s.id === mine!.id)).toBeUndefined();
      await vi.waitFor(() => {
        const events = t.gw.store.query({ sessionId: mine!.id, limit: 100 });
        expect(events.map((e) => e.type)).toContain('session.terminated');
        expect(events[events.length - 1]).toMatchObject({ type: 'session.closed', data: { reason: 'terminated_by_operator' } });
      });
      const terminated = t.gw.store.query({ sessionId: mine!.id, types: ['session.terminated'], limit: 10 });
      expect(terminated).toHaveLength(1);
      expect(terminated[0].data).toMatchObject({ reason: 'terminated_by_operator', by: { subject: 'carol' } });
    } finally {
      await client.end().catch(() => undefined);
    }
  });

  it('ends a psql session in the middle of a statement, naming who ended it', async () => {
    const marker = `kill-me-${randomUUID().slice(0, 8)}`;
    const running = psql(t, t.url('read'), alice, ['-c', `select pg_sleep(30) /* ${marker} */`]);
    const started = await vi.waitFor(
      () => {
        const e = t.gw.store.query({ types: ['statement.started'], text: marker, limit: 1 });
        expect(e).toHaveLength(1);
        return e[0];
      },
      { timeout: 10_000 },
    );
    const del = await api(`/api/v1/sessions/${started.sessionId}`, auditor, { method: 'DELETE' });
    expect(del.status).toBe(202);
    const r = await running;
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('FATAL:  the session was ended by carol through the Sluice API');
  });

  it('answers 404 for a session that does not exist', async () => {
    const id = randomUUID();
    const r = await api<ApiError>(`/api/v1/sessions/${id}`, auditor, { method: 'DELETE' });
    expect(r.status).toBe(404);
    expect(r.body).toEqual({ error: { code: 'session_not_found', message: `no live session ${id}` } });
  });
});

describe('health, metrics and keys', () => {
  it('reports live and ready', async () => {
    const health = await api('/healthz');
    expect(health).toMatchObject({ status: 200, body: { status: 'ok' } });
    const ready = await api('/readyz');
    expect(ready).toMatchObject({ status: 200, body: { status: 'ready', reasons: [] } });
  });

  it('exposes sessions, statements, refusals, backend connect time and process metrics', async () => {
    let client: pg.Client | undefined;
    try {
      client = await pgClient(t, 'read', alice);
      await client.query('select 1');
      const refused = await psql(t, t.url('write'), bob, ['-c', 'select 1']);
      expect(refused.code).not.toBe(0);
      const r = await api<string>('/metrics');
      expect(r.status).toBe(200);
      expect(r.headers.get('content-type')).toContain('text/plain');
      const text = r.body;
      expect(text).toMatch(/^sluice_sessions_active\{protocol="postgres"\} [1-9]\d*$/m);
      expect(text).toMatch(/^sluice_statements_total\{protocol="postgres",resource="orders"\} [1-9]\d*$/m);
      expect(text).toMatch(/^sluice_session_refusals_total\{protocol="postgres",reason="grant_not_allowed"\} [1-9]\d*$/m);
      expect(text).toMatch(/^sluice_backend_connect_seconds_count\{resource="orders"\} [1-9]\d*$/m);
      expect(text).toMatch(/^nodejs_heap_size_used_bytes \d+/m);
    } finally {
      await client?.end();
    }
  });

  it('publishes the dev issuer public key and nothing private', async () => {
    const r = await api<{ keys: Array<Record<string, unknown>> }>('/.well-known/jwks.json');
    expect(r.status).toBe(200);
    const { kid } = decodeProtectedHeader(alice);
    const key = r.body.keys.find((k) => k.kid === kid);
    expect(key).toMatchObject({ kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA', use: 'sig' });
    for (const k of r.body.keys) {
      for (const priv of ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k']) expect(k).not.toHaveProperty(priv);
    }
  });

  it('answers unknown routes with the error shape', async () => {
    const r = await api<ApiError>('/api/v1/nope?x=1', auditor);
    expect(r.status).toBe(404);
    expect(r.body).toEqual({ error: { code: 'not_found', message: 'no route GET /api/v1/nope' } });
  });
});
