import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApprovalStatus } from '../../src/approvals/types.js';
import type { AuditEvent } from '../../src/events/types.js';
import { startGateway, type TestGateway } from '../support/gateway.js';

let t: TestGateway;
/** Requester (ops), two approvers (dba), a bystander, a reader with approvals:read, an auditor. */
let olivia: string;
let dave: string;
let erin: string;
let bob: string;
let rita: string;
let auditor: string;

beforeAll(async () => {
  t = await startGateway((c) => {
    c.server.public_url = 'https://sluice.example.com';
    const approvers = [{ groups: ['dba'] }];
    c.policies.push(
      { name: 'ops-read', when: { groups: ['ops'] }, resources: ['orders'], grants: ['read'] },
      { name: 'ops-write-on-request', when: { groups: ['ops'] }, resources: ['orders'], access: { grants: ['write'], max_duration: '4h', approvers, request_ttl: '10m' } },
      { name: 'ops-ddl-two-keys', when: { groups: ['ops'] }, resources: ['orders'], access: { grants: ['ddl'], max_duration: '1h', approvers, required: 2, request_ttl: '10m' } },
      { name: 'hold-drops', when: { groups: ['ops'] }, resources: ['orders'], approval: { statements: { kinds: ['ddl.drop'] }, approvers, request_ttl: '10m' } },
      { name: 'approval-readers', when: { groups: ['compliance'] }, permissions: ['approvals:read'] },
    );
  });
  [olivia, dave, erin, bob, rita, auditor] = await Promise.all([
    t.token('olivia', ['ops']),
    t.token('dave', ['dba']),
    t.token('erin', ['dba']),
    t.token('bob', ['dev']),
    t.token('rita', ['compliance']),
    t.token('carol', ['auditor']),
  ]);
});
afterAll(async () => {
  await t?.stop();
});

interface ApiError {
  error: { code: string; message: string };
}

async function api<T = unknown>(method: string, path: string, token: string, body?: unknown, raw?: string): Promise<{ status: number; body: T }> {
  const headers: Record<string, string> = { accept: 'application/json', authorization: `Bearer ${token}` };
  if (body !== undefined || raw !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(t.httpUrl + path, { method, headers, body: raw ?? (body === undefined ? undefined : JSON.stringify(body)) });
  const text = await res.text();
  return { status: res.status, body: JSON.parse(text) as T };
}

async function requestAccess(grant: 'write' | 'ddl', duration: string | number = '2h', token = olivia): Promise<ApprovalStatus> {
  const r = await api<ApprovalStatus>('POST', '/api/v1/access-requests', token, { resource: 'orders', grant, duration, reason: 'INC-42 backfill' });
  expect(r.status).toBe(201);
  return r.body;
}

/** Waits the service is holding open for this request: lets a test decide only once the long-poll is really waiting. */
function waiters(id: string): number {
  return t.gw.approvals.waiters(id);
}

function listed(body: { approvals: ApprovalStatus[] }, id: string): boolean {
  return body.approvals.some((s) => s.request.id === id);
}

describe('access requests through the API', () => {
  it('follows one request from creation to approval, refusing everyone who may not decide', async () => {
    const created = await requestAccess('write', '2h');
    const id = created.request.id;
    expect(id).toMatch(/^apr_[a-z2-7]{20}$/);
    expect(created).toMatchObject({
      state: 'pending',
      decisions: [],
      request: { kind: 'access', rule: 'ops-write-on-request', resource: 'orders', required: 1, justification: 'INC-42 backfill', access: { grant: 'write', duration: 7200 } },
    });
    expect(created.request.requester).toMatchObject({ subject: 'olivia', groups: ['ops'] });
    expect(created.request.link).toBe(`https://sluice.example.com/approvals/${id}`);

    // Visible to the requester, the approvers and approvals:read; not to a bystander.
    for (const [token, path] of [
      [olivia, '/api/v1/approvals'],
      [dave, '/api/v1/approvals?state=pending'],
      [dave, '/api/v1/access-requests'],
      [olivia, '/api/v1/approvals?mine=true&kind=access'],
      [rita, '/api/v1/approvals'],
    ] as const) {
      const r = await api<{ approvals: ApprovalStatus[] }>('GET', path, token);
      expect(r.status).toBe(200);
      expect(listed(r.body, id)).toBe(true);
    }
    for (const path of ['/api/v1/approvals', '/api/v1/access-requests']) {
      const r = await api<{ approvals: ApprovalStatus[] }>('GET', path, bob);
      expect(r.status).toBe(200);
      expect(listed(r.body, id)).toBe(false);
    }
    expect(listed((await api<{ approvals: ApprovalStatus[] }>('GET', '/api/v1/approvals?mine=true', dave)).body, id)).toBe(false);
    expect(listed((await api<{ approvals: ApprovalStatus[] }>('GET', '/api/v1/approvals?kind=statement', dave)).body, id)).toBe(false);
    expect(listed((await api<{ approvals: ApprovalStatus[] }>('GET', '/api/v1/approvals?state=approved', dave)).body, id)).toBe(false);
    for (const path of [`/api/v1/approvals/${id}`, `/api/v1/access-requests/${id}`]) {
      const hidden = await api<ApiError>('GET', path, bob);
      expect(hidden.status).toBe(404);
      expect(hidden.body.error.code).toBe('approval_not_found');
      expect(hidden.body.error.message).not.toContain('olivia');
      const seen = await api<ApprovalStatus>('GET', path, dave);
      expect(seen.status).toBe(200);
      expect(seen.body.request.id).toBe(id);
    }

    const self = await api<ApiError>('POST', `/api/v1/approvals/${id}/approve`, olivia, { reason: 'trust me' });
    expect(self.status).toBe(403);
    expect(self.body.error.code).toBe('self_approval');
    const outsider = await api<ApiError>('POST', `/api/v1/access-requests/${id}/approve`, bob, { reason: 'looks fine' });
    expect(outsider.status).toBe(403);
    expect(outsider.body.error.code).toBe('not_approver');
    const readerOnly = await api<ApiError>('POST', `/api/v1/approvals/${id}/approve`, rita, { reason: 'seen it' });
    expect(readerOnly.status).toBe(403);
    expect(readerOnly.body.error.code).toBe('not_approver');

    const approved = await api<ApprovalStatus>('POST', `/api/v1/access-requests/${id}/approve`, dave, { reason: 'ok for INC-42' });
    expect(approved.status).toBe(200);
    expect(approved.body.state).toBe('approved');
    expect(approved.body.decisions).toEqual([expect.objectContaining({ decision: 'approve', reason: 'ok for INC-42', by: expect.objectContaining({ subject: 'dave' }) })]);
    const until = Date.parse(approved.body.validUntil!) - Date.parse(approved.body.decidedAt!);
    expect(until).toBe(7200 * 1000);

    const replayed = await api<ApiError>('POST', `/api/v1/approvals/${id}/approve`, dave, { reason: 'again' });
    expect(replayed.status).toBe(409);
    expect(replayed.body.error.code).toBe('decision_replayed');
    const late = await api<ApiError>('POST', `/api/v1/approvals/${id}/deny`, erin, { reason: 'too late' });
    expect(late.status).toBe(409);
    expect(late.body.error.code).toBe('approval_not_pending');
    expect((await api<ApprovalStatus>('GET', `/api/v1/approvals/${id}`, olivia)).body.state).toBe('approved');
  });

  it('needs two distinct approvers when the rule requires two', async () => {
    const { request } = await requestAccess('ddl', '30m');
    expect(request).toMatchObject({ rule: 'ops-ddl-two-keys', required: 2, access: { grant: 'ddl', duration: 1800 } });
    const first = await api<ApprovalStatus>('POST', `/api/v1/approvals/${request.id}/approve`, dave, { reason: 'first key' });
    expect(first.status).toBe(200);
    expect(first.body.state).toBe('pending');
    const again = await api<ApiError>('POST', `/api/v1/approvals/${request.id}/approve`, dave, { reason: 'second key, same person' });
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe('decision_replayed');
    // A fresh token for the same person is still the same person.
    const daveAgain = await t.token('dave', ['dba']);
    expect((await api<ApiError>('POST', `/api/v1/approvals/${request.id}/approve`, daveAgain, { reason: 'new token' })).body.error.code).toBe('decision_replayed');
    const second = await api<ApprovalStatus>('POST', `/api/v1/approvals/${request.id}/approve`, erin, { reason: 'second key' });
    expect(second.status).toBe(200);
    expect(second.body.state).toBe('approved');
    expect(second.body.decisions.map((d) => d.by.subject)).toEqual(['dave', 'erin']);
  });

  it('lets one denial win over an approval', async () => {
    const { request } = await requestAccess('ddl', '10m');
    expect((await api<ApprovalStatus>('POST', `/api/v1/approvals/${request.id}/approve`, dave, { reason: 'fine by me' })).body.state).toBe('pending');
    const denied = await api<ApprovalStatus>('POST', `/api/v1/access-requests/${request.id}/deny`, erin, { reason: 'not during the freeze' });
    expect(denied.status).toBe(200);
    expect(denied.body.state).toBe('denied');
    expect(denied.body.validUntil).toBeUndefined();
    const after = await api<ApiError>('POST', `/api/v1/approvals/${request.id}/approve`, (await t.token('frank', ['dba'])), { reason: 'overrule' });
    expect(after.status).toBe(409);
    expect(after.body.error.code).toBe('approval_not_pending');
  });

  it('keeps statement requests off the access-request paths', async () => {
    const state = t.gw.state();
    const principal = await state.authenticator.authenticate(olivia);
    const held = await t.gw.approvals.requestStatement({
      principal,
      resource: 'orders',
      hold: { policy: 'hold-drops', rule: state.config.policies.find((p) => p.name === 'hold-drops')!.approval! },
      sessionId: '00000000-0000-4000-8000-000000000001',
      grant: 'ddl',
      text: 'drop table scratch',
      exact: { text: 'drop table scratch' },
      facts: { kinds: ['ddl.drop'], tables: ['public.scratch'], functions: [], opaque: false },
    });
    const id = held.request.id;
    expect((await api<ApprovalStatus>('GET', `/api/v1/approvals/${id}`, dave)).body.request.kind).toBe('statement');
    expect((await api<ApiError>('GET', `/api/v1/access-requests/${id}`, dave)).status).toBe(404);
    const viaAccess = await api<ApiError>('POST', `/api/v1/access-requests/${id}/approve`, dave, { reason: 'wrong path' });
    expect(viaAccess.status).toBe(404);
    expect((await api<ApprovalStatus>('GET', `/api/v1/approvals/${id}`, dave)).body.state).toBe('pending');
    const { body } = await api<{ approvals: ApprovalStatus[] }>('GET', '/api/v1/access-requests', dave);
    expect(body.approvals.every((s) => s.request.kind === 'access')).toBe(true);
    expect(listed(body, id)).toBe(false);
    expect(listed((await api<{ approvals: ApprovalStatus[] }>('GET', '/api/v1/approvals?kind=statement', dave)).body, id)).toBe(true);
  });

  it('records approval.requested and approval.decided naming the request', async () => {
    const { request } = await requestAccess('write', 600);
    await api('POST', `/api/v1/approvals/${request.id}/approve`, erin, { reason: 'audit trail check' });
    const r = await api<{ events: AuditEvent[] }>('GET', `/api/v1/audit/events?q=${request.id}`, auditor);
    expect(r.status).toBe(200);
    const mine = r.body.events.filter((e) => (e.data as { id?: string }).id === request.id);
    expect(mine.map((e) => e.type)).toEqual(['approval.requested', 'approval.decided']);
    expect(mine[0]).toMatchObject({ resource: 'orders', principal: { subject: 'olivia' }, data: { kind: 'access', rule: 'ops-write-on-request' } });
    expect(mine[1]!.data).toMatchObject({ decision: 'approve', by: { subject: 'erin' }, reason: 'audit trail check', state: 'approved' });
  });
});

describe('waiting for a decision', () => {
  it('returns as soon as the request is decided', async () => {
    const { request } = await requestAccess('write', '1h');
    const waiting = api<ApprovalStatus>('GET', `/api/v1/approvals/${request.id}/wait?timeout=30`, olivia);
    await expect.poll(() => waiters(request.id)).toBe(1);
    const decided = await api<ApprovalStatus>('POST', `/api/v1/approvals/${request.id}/deny`, dave, { reason: 'use the read replica' });
    expect(decided.status).toBe(200);
    const r = await waiting;
    expect(r.status).toBe(200);
    expect(r.body.state).toBe('denied');
    expect(r.body.decisions).toEqual([expect.objectContaining({ decision: 'deny', reason: 'use the read replica' })]);
  });

  it('answers pending when the timeout passes, and at once for a decided request', async () => {
    const { request } = await requestAccess('write', '1h');
    const pending = await api<ApprovalStatus>('GET', `/api/v1/approvals/${request.id}/wait?timeout=1`, olivia);
    expect(pending.status).toBe(200);
    expect(pending.body.state).toBe('pending');
    const now = await api<ApprovalStatus>('GET', `/api/v1/approvals/${request.id}/wait?timeout=0`, dave);
    expect(now.body.state).toBe('pending');
    await api('POST', `/api/v1/approvals/${request.id}/approve`, dave, { reason: 'ok' });
    const done = await api<ApprovalStatus>('GET', `/api/v1/approvals/${request.id}/wait?timeout=60`, olivia);
    expect(done.body.state).toBe('approved');
  });

  it('refuses a bystander and bad timeouts', async () => {
    const { request } = await requestAccess('write', '1h');
    expect((await api<ApiError>('GET', `/api/v1/approvals/${request.id}/wait?timeout=1`, bob)).status).toBe(404);
    for (const [q, text] of [
      ['timeout=61', 'at most 60 seconds'],
      ['timeout=-1', 'timeout'],
      ['timeout=1.5', 'timeout'],
      ['timeout=1&timeout=2', 'give it once'],
      ['until=later', 'unknown key until'],
    ] as const) {
      const r = await api<ApiError>('GET', `/api/v1/approvals/${request.id}/wait?${q}`, olivia);
      expect(r.status, q).toBe(400);
      expect(r.body.error.code).toBe('query_invalid');
      expect(r.body.error.message).toContain(text);
    }
  });

  it('stops waiting when the client hangs up', async () => {
    const { request } = await requestAccess('write', '1h');
    const ac = new AbortController();
    const hangingUp = fetch(`${t.httpUrl}/api/v1/approvals/${request.id}/wait?timeout=60`, { headers: { authorization: `Bearer ${olivia}` }, signal: ac.signal });
    await expect.poll(() => waiters(request.id)).toBe(1);
    ac.abort();
    await expect(hangingUp).rejects.toThrow();
    await expect.poll(() => waiters(request.id)).toBe(0);
  });
});

describe('bad requests', () => {
  it('refuses bodies that do not fit, naming the key', async () => {
    const base = { resource: 'orders', grant: 'write', duration: '2h', reason: 'why not' };
    const cases: Array<[unknown, string, string]> = [
      [{ ...base, role: 'admin' }, 'body_invalid', 'unknown key role'],
      [{ ...base, grant: 'superuser' }, 'body_invalid', 'body.grant'],
      [{ ...base, duration: 'forever' }, 'duration_invalid', 'body.duration'],
      [{ ...base, duration: 0 }, 'duration_invalid', 'above zero'],
      [{ ...base, duration: '5h' }, 'duration_too_long', '14400 seconds'],
      [{ ...base, resource: undefined }, 'body_invalid', 'body.resource'],
      [{ ...base, reason: '  ' }, 'reason_missing', '--reason'],
      [{ ...base, reason: undefined }, 'reason_missing', '--reason'],
      [[base], 'body_invalid', 'body'],
    ];
    for (const [body, code, text] of cases) {
      const r = await api<ApiError>('POST', '/api/v1/access-requests', olivia, body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.body.error.code).toBe(code);
      expect(r.body.error.message).toContain(text);
    }
    const notAllowed = await api<ApiError>('POST', '/api/v1/access-requests', bob, base);
    expect(notAllowed.status).toBe(403);
    expect(notAllowed.body.error.code).toBe('no_access_rule');
    const malformed = await api<ApiError>('POST', '/api/v1/access-requests', olivia, undefined, '{"resource":');
    expect(malformed.status).toBe(400);
    expect(malformed.body.error.code).toBe('body_invalid');
  });

  it('refuses decisions without a reason or with extra keys', async () => {
    const { request } = await requestAccess('write', '1h');
    const path = `/api/v1/approvals/${request.id}/approve`;
    const missing = await api<ApiError>('POST', path, dave, {});
    expect(missing.status).toBe(400);
    expect(missing.body.error.code).toBe('reason_missing');
    const extra = await api<ApiError>('POST', path, dave, { reason: 'ok', state: 'approved' });
    expect(extra.status).toBe(400);
    expect(extra.body.error).toEqual({ code: 'body_invalid', message: 'body: unknown key state' });
    const noBody = await api<ApiError>('POST', path, dave);
    expect(noBody.status).toBe(400);
    expect(noBody.body.error.code).toBe('body_invalid');
    const unknown = await api<ApiError>('POST', '/api/v1/approvals/apr_aaaaaaaaaaaaaaaaaaaa/approve', dave, { reason: 'ok' });
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.code).toBe('approval_not_found');
    expect((await api<ApprovalStatus>('GET', `/api/v1/approvals/${request.id}`, dave)).body.decisions).toEqual([]);
  });

  it('refuses bad list filters and unauthenticated callers', async () => {
    for (const q of ['state=open', 'kind=grant', 'limit=0', 'limit=abc', 'mine=yes', 'sort=asc', 'state=pending&state=denied']) {
      const r = await api<ApiError>('GET', `/api/v1/approvals?${q}`, dave);
      expect(r.status, q).toBe(400);
      expect(r.body.error.code).toBe('query_invalid');
    }
    expect((await api<ApiError>('GET', '/api/v1/access-requests?kind=statement', dave)).body.error.message).toContain('unknown key kind');
    const anon = await fetch(`${t.httpUrl}/api/v1/approvals`);
    expect(anon.status).toBe(401);
    const anonPost = await fetch(`${t.httpUrl}/api/v1/access-requests`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(anonPost.status).toBe(401);
  });
});
