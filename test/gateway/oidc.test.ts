import { decodeJwt } from 'jose';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { AuditEvent } from '../../src/events/types.js';
import { pgClient } from '../support/clients.js';
import { startGateway, type TestGateway } from '../support/gateway.js';
import { startOidcProvider, type TestOidcProvider } from '../support/oidc.js';

let corp: TestOidcProvider;
/** Configured in Sluice as issuer "partner" for audience urn:sluice:test, but it mints tokens for another audience. */
let partner: TestOidcProvider;
/** Not configured in Sluice at all. */
let stranger: TestOidcProvider;
let t: TestGateway;

beforeAll(async () => {
  [corp, partner, stranger] = await Promise.all([startOidcProvider(), startOidcProvider({ audience: 'urn:partner:reports' }), startOidcProvider()]);
  t = await startGateway((cfg) => {
    cfg.identity.issuers = [
      { name: 'corp', issuer: corp.issuer, audience: corp.audience, jwks_uri: corp.jwksUri, algorithms: ['RS256'], kind: 'machine' },
      { name: 'partner', issuer: partner.issuer, audience: 'urn:sluice:test', algorithms: ['RS256'], kind: 'machine' },
    ];
    cfg.policies = [
      { name: 'ci-read', when: { groups: ['corp:ci'] }, resources: ['orders'], grants: ['read'] },
      { name: 'ci-pipeline-writes', when: { issuer: corp.issuer, subjects: ['ci-pipeline'] }, resources: ['orders'], grants: ['write'] },
      { name: 'dev-dba', when: { groups: ['dev:dba'] }, resources: ['*'], grants: ['read', 'write', 'ddl'] },
    ];
  });
});
afterAll(async () => {
  await t?.stop();
  await Promise.all([corp, partner, stranger].map((p) => p?.stop()));
});

async function connect(grant: string, token: string): Promise<pg.Client> {
  const c = await pgClient(t, grant, token);
  c.on('error', () => undefined);
  return c;
}

async function refusal(grant: string, token: string): Promise<{ code?: string; severity?: string; message: string }> {
  const err = await connect(grant, token).then(
    async (c) => {
      await c.end();
      throw new Error('the connection was accepted');
    },
    (e: unknown) => e as pg.DatabaseError,
  );
  return { code: err.code, severity: err.severity, message: err.message };
}

async function openedEvent(sessionMarker: string): Promise<AuditEvent> {
  return vi.waitFor(() => {
    const [started] = t.gw.store.query({ types: ['statement.started'], text: sessionMarker, limit: 1 });
    expect(started).toBeDefined();
    const [opened] = t.gw.store.query({ types: ['session.opened'], sessionId: started.sessionId, limit: 1 });
    return opened;
  });
}

/** The token's pieces that must never appear in messages, events or logs. */
function tokenPieces(token: string): string[] {
  const [header, payload, signature] = token.split('.');
  return [token, header.slice(-24), payload.slice(8, 40), payload.slice(-24), signature.slice(0, 24), signature.slice(-24)];
}

function expectNoTokenIn(text: string, token: string): void {
  for (const piece of tokenPieces(token)) expect(text).not.toContain(piece);
}

describe('tokens from a real OpenID provider', () => {
  it('opens a session for a client-credentials token as the machine principal (issuer, client id)', async () => {
    const token = await corp.clientToken('ci-pipeline');
    expect(decodeJwt(token)).toMatchObject({ iss: corp.issuer, sub: 'ci-pipeline', aud: corp.audience });
    const c = await connect('read', token);
    try {
      const r = await c.query("select current_user as u, count(*)::int as n from customers /* oidc-ci-read */");
      expect(r.rows).toEqual([{ u: t.pg.roles.reader.user, n: 100 }]);
    } finally {
      await c.end();
    }
    const opened = await openedEvent('oidc-ci-read');
    expect(opened.principal).toEqual({ issuer: corp.issuer, subject: 'ci-pipeline', kind: 'machine' });
    expect(opened.data).toMatchObject({ grant: 'read', policy: 'ci-read', groups: ['corp:ci', 'corp:deployers'], tls: true });
    expectNoTokenIn(JSON.stringify(t.gw.store.query({ sessionId: opened.sessionId, limit: 100 })), token);
  });

  it('applies policies on the issuer and subject of the principal', async () => {
    const c = await connect('write', await corp.clientToken('ci-pipeline'));
    try {
      expect((await c.query('select current_user as u /* oidc-ci-write */')).rows).toEqual([{ u: t.pg.roles.writer.user }]);
    } finally {
      await c.end();
    }
    expect((await openedEvent('oidc-ci-write')).data).toMatchObject({ grant: 'write', policy: 'ci-pipeline-writes' });

    const other = await refusal('write', await corp.clientToken('reporting'));
    expect(other).toMatchObject({ code: '42501', severity: 'FATAL' });
    expect(other.message).toBe('no policy allows grant write on resource orders for subject reporting (groups: corp:analysts)');
  });

  it('treats the same subject from another issuer as a different principal', async () => {
    const devToken = await t.token('ci-pipeline', ['ci']);
    const write = await refusal('write', devToken);
    expect(write.code).toBe('42501');
    expect(write.message).toBe('no policy allows grant write on resource orders for subject ci-pipeline (groups: dev:ci)');
    // A dev token cannot claim another issuer's group namespace either.
    const spoof = await refusal('read', await t.token('ci-pipeline', ['corp:ci']));
    expect(spoof.message).toContain('(groups: dev:corp:ci)');

    const refused = await vi.waitFor(() => {
      const events = t.gw.store.query({ types: ['session.refused'], subject: 'ci-pipeline', limit: 10 });
      expect(events).toHaveLength(2);
      return events;
    });
    const devIssuer = refused[0].principal!.issuer;
    expect(devIssuer).not.toBe(corp.issuer);
    for (const e of refused) expect(e.principal).toEqual({ issuer: devIssuer, subject: 'ci-pipeline', kind: 'person' });

    const dba = await connect('read', await t.token('ci-pipeline', ['dba']));
    try {
      await dba.query('select 1 /* oidc-dev-same-subject */');
    } finally {
      await dba.end();
    }
    const devOpened = await openedEvent('oidc-dev-same-subject');
    const corpOpened = await openedEvent('oidc-ci-read');
    expect(devOpened.principal!.subject).toBe(corpOpened.principal!.subject);
    expect(devOpened.principal!.issuer).not.toBe(corpOpened.principal!.issuer);
    expect(devOpened.data).toMatchObject({ policy: 'dev-dba', groups: ['dev:dba'] });
  });

  it('refuses a token for another audience with 28000, naming the check and not echoing the token', async () => {
    const token = await partner.clientToken('ci-pipeline');
    expect(decodeJwt(token)).toMatchObject({ iss: partner.issuer, aud: 'urn:partner:reports' });
    const r = await refusal('read', token);
    expect(r).toMatchObject({ code: '28000', severity: 'FATAL' });
    expect(r.message).toBe(
      'authentication failed: the token audience "urn:partner:reports" does not include "urn:sluice:test"; request a token for audience "urn:sluice:test"',
    );
    expectNoTokenIn(r.message, token);
    const event = await vi.waitFor(() => {
      const [e] = t.gw.store.query({ types: ['session.refused'], text: 'audience_mismatch', limit: 1 });
      expect(e).toBeDefined();
      return e;
    });
    expect(event.data).toMatchObject({ reason: 'audience_mismatch', grant: 'read', tls: true });
    expect(event.principal).toBeUndefined();
    expectNoTokenIn(JSON.stringify(event), token);
    expectNoTokenIn(t.logs.join(''), token);
  });

  it('refuses a token from an issuer Sluice does not trust', async () => {
    const token = await stranger.clientToken('ci-pipeline');
    const r = await refusal('read', token);
    expect(r).toMatchObject({ code: '28000', severity: 'FATAL' });
    expect(r.message).toBe(`authentication failed: Sluice does not trust the token issuer "${stranger.issuer}"; get a token from a configured issuer`);
    expectNoTokenIn(r.message, token);
    expectNoTokenIn(t.logs.join(''), token);
  });

  it('refuses a corp token whose signature was tampered with', async () => {
    const token = await corp.clientToken('ci-pipeline');
    const [h, p, s] = token.split('.');
    const claims = JSON.parse(Buffer.from(p, 'base64url').toString('utf8')) as Record<string, unknown>;
    const forged = [h, Buffer.from(JSON.stringify({ ...claims, sub: 'admin-bot' })).toString('base64url'), s].join('.');
    const r = await refusal('read', forged);
    expect(r.code).toBe('28000');
    expect(r.message).toBe(`authentication failed: the token signature does not verify with the keys of issuer ${corp.issuer}; get a new token from that issuer`);
    expectNoTokenIn(r.message, forged);
  });
});
