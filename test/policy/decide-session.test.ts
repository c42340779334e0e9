import { describe, expect, it } from 'vitest';
import type { GrantName, PolicyConfig } from '../../src/config/schema.js';
import type { Principal } from '../../src/identity/principal.js';
import { allowedGrants, decideSession, type SessionDecision } from '../../src/policy/index.js';
import { CI, IDP, NOW, policies, principal } from './fixtures.js';

const config = policies(
  { name: 'dba-all', when: { groups: ['dba'] }, resources: ['*'], grants: ['read', 'write', 'ddl', 'admin'] },
  { name: 'eng-orders-read', when: { groups: ['eng'] }, resources: ['orders'], grants: ['read'], max_session_duration: '1h' },
  { name: 'eng-orders-write', when: { groups: ['eng-writers'] }, resources: ['orders'], grants: ['write'], max_session_duration: '15m' },
  { name: 'ci-read', when: { issuer: CI, kind: 'machine' }, resources: ['*'], grants: ['read', 'write'], max_session_duration: 600 },
  { name: 'no-writes-for-ci', effect: 'deny', when: { kind: 'machine' }, resources: ['*'], grants: ['write', 'ddl', 'admin'] },
  { name: 'contractors-no-billing', effect: 'deny', when: { groups: ['contractors'] }, resources: ['billing'], grants: ['read', 'write', 'ddl', 'admin'] },
  { name: 'auditors', when: { groups: ['auditors'] }, permissions: ['audit:read'] },
);

const person = (...groups: string[]): Principal => principal({ subject: 'alice', groups });
const ciJob = (...groups: string[]): Principal =>
  principal({ issuer: CI, subject: 'repo:acme/orders:ref:refs/heads/main', kind: 'machine', groups });

type Expected =
  | { allowed: true; policy: string; endsAt?: number }
  | { allowed: false; code: string; policy?: string };

function outcome(d: SessionDecision): Expected {
  return d.allowed
    ? { allowed: true, policy: d.policy, ...(d.endsAt === undefined ? {} : { endsAt: d.endsAt }) }
    : { allowed: false, code: d.code, ...(d.policy === undefined ? {} : { policy: d.policy }) };
}

const tokenExp = NOW + 3600 * 8;

describe('decideSession against a realistic policy set', () => {
  it.each<[string, Principal, string, GrantName, Expected]>([
    ['dba reads any resource, no session limit', person('dba'), 'orders', 'read', { allowed: true, policy: 'dba-all' }],
    ['dba gets admin on billing, no session limit', person('dba'), 'billing', 'admin', { allowed: true, policy: 'dba-all' }],
    ['eng reads orders, ends after 1h', person('eng'), 'orders', 'read', { allowed: true, policy: 'eng-orders-read', endsAt: NOW + 3600 }],
    ['eng writer writes orders, ends after 15m', person('eng', 'eng-writers'), 'orders', 'write', { allowed: true, policy: 'eng-orders-write', endsAt: NOW + 900 }],
    ['eng writer reading orders gets only the read limit', person('eng', 'eng-writers'), 'orders', 'read', { allowed: true, policy: 'eng-orders-read', endsAt: NOW + 3600 }],
    ['eng asks for write', person('eng'), 'orders', 'write', { allowed: false, code: 'grant_not_allowed', policy: 'eng-orders-read' }],
    ['eng asks for admin', person('eng'), 'orders', 'admin', { allowed: false, code: 'grant_not_allowed', policy: 'eng-orders-read' }],
    ['eng asks for another resource', person('eng'), 'billing', 'read', { allowed: false, code: 'no_matching_policy' }],
    ['CI reads orders, ends after 10m', ciJob(), 'orders', 'read', { allowed: true, policy: 'ci-read', endsAt: NOW + 600 }],
    ['CI write is denied although ci-read lists write', ciJob(), 'orders', 'write', { allowed: false, code: 'policy_denied', policy: 'no-writes-for-ci' }],
    ['CI in the dba group still cannot write', ciJob('dba'), 'orders', 'write', { allowed: false, code: 'policy_denied', policy: 'no-writes-for-ci' }],
    ['contractor dba cannot read billing (named deny beats "*" allow)', person('dba', 'contractors'), 'billing', 'read', { allowed: false, code: 'policy_denied', policy: 'contractors-no-billing' }],
    ['contractor dba still reads orders', person('dba', 'contractors'), 'orders', 'read', { allowed: true, policy: 'dba-all' }],
    ['API permission policies open no sessions', person('auditors'), 'orders', 'read', { allowed: false, code: 'no_matching_policy' }],
    ['no groups at all', person(), 'orders', 'read', { allowed: false, code: 'no_matching_policy' }],
  ])('%s', (_label, p, resource, grant, expected) => {
    const d = decideSession(config, { principal: { ...p, expiresAt: tokenExp }, resource, grant, now: NOW });
    expect(outcome(d)).toEqual(expected);
    if (d.allowed) expect(d.grant).toBe(grant);
  });
});

describe('decideSession: lookalike groups, subjects and resources never match', () => {
  const bySubject = policies({ name: 'alice-only', when: { subjects: ['alice'] }, resources: ['orders'], grants: ['read'] });

  it.each<[string, Principal, string]>([
    ['group DBA', person('DBA'), 'orders'],
    ['group dba-evil', person('dba-evil'), 'orders'],
    ['group dbas', person('dbas'), 'orders'],
    ['group " dba"', person(' dba'), 'orders'],
    ['group "dba "', person('dba '), 'orders'],
    ['resource "*" is not a wildcard request', person('dba'), '*'],
  ])('dba-all: %s', (_label, p, resource) => {
    const d = decideSession(config, { principal: p, resource, grant: 'read', now: NOW });
    expect(outcome(d)).toEqual({ allowed: false, code: 'no_matching_policy' });
  });

  it.each<[string, string, string]>([
    ['subject Alice', 'Alice', 'orders'],
    ['subject "alice "', 'alice ', 'orders'],
    ['subject alice-evil', 'alice-evil', 'orders'],
    ['resource Orders', 'alice', 'Orders'],
    ['resource "orders "', 'alice', 'orders '],
    ['resource orders-archive', 'alice', 'orders-archive'],
    ['resource ord', 'alice', 'ord'],
  ])('alice-only: %s', (_label, subject, resource) => {
    const d = decideSession(bySubject, { principal: principal({ subject }), resource, grant: 'read', now: NOW });
    expect(outcome(d)).toEqual({ allowed: false, code: 'no_matching_policy' });
  });
});

describe('decideSession: deny wins over allow', () => {
  it.each<[string, unknown[], string, Expected]>([
    [
      'deny on "*" beats allow on the named resource',
      [
        { name: 'freeze-writes', effect: 'deny', when: { groups: ['eng'] }, resources: ['*'], grants: ['write'] },
        { name: 'orders-writers', when: { groups: ['eng'] }, resources: ['orders'], grants: ['write'] },
      ],
      'write',
      { allowed: false, code: 'policy_denied', policy: 'freeze-writes' },
    ],
    [
      'deny on the named resource beats allow on "*"',
      [
        { name: 'no-orders', effect: 'deny', when: { groups: ['eng'] }, resources: ['orders'], grants: ['write'] },
        { name: 'write-all', when: { groups: ['eng'] }, resources: ['*'], grants: ['write'] },
      ],
      'write',
      { allowed: false, code: 'policy_denied', policy: 'no-orders' },
    ],
    [
      'deny on another grant leaves this grant allowed',
      [
        { name: 'no-ddl', effect: 'deny', when: { groups: ['eng'] }, resources: ['*'], grants: ['ddl'] },
        { name: 'write-all', when: { groups: ['eng'] }, resources: ['*'], grants: ['write', 'ddl'] },
      ],
      'write',
      { allowed: true, policy: 'write-all' },
    ],
    [
      'deny on another resource leaves this resource allowed',
      [
        { name: 'no-billing', effect: 'deny', when: { groups: ['eng'] }, resources: ['billing'], grants: ['write'] },
        { name: 'write-all', when: { groups: ['eng'] }, resources: ['*'], grants: ['write'] },
      ],
      'write',
      { allowed: true, policy: 'write-all' },
    ],
    [
      'deny for another group leaves this principal allowed',
      [
        { name: 'no-interns', effect: 'deny', when: { groups: ['interns'] }, resources: ['*'], grants: ['write'] },
        { name: 'write-all', when: { groups: ['eng'] }, resources: ['*'], grants: ['write'] },
      ],
      'write',
      { allowed: true, policy: 'write-all' },
    ],
    [
      'two matching denies report the first by name, whatever the order',
      [
        { name: 'z-deny', effect: 'deny', when: { groups: ['eng'] }, resources: ['*'], grants: ['write'] },
        { name: 'a-deny', effect: 'deny', when: { subjects: ['alice'] }, resources: ['orders'], grants: ['write'] },
        { name: 'write-all', when: { groups: ['eng'] }, resources: ['*'], grants: ['write'] },
      ],
      'write',
      { allowed: false, code: 'policy_denied', policy: 'a-deny' },
    ],
    [
      'a deny whose every grant is denied leaves nothing to suggest',
      [
        { name: 'no-writes', effect: 'deny', when: { groups: ['eng'] }, resources: ['*'], grants: ['write'] },
        { name: 'write-orders', when: { groups: ['eng'] }, resources: ['orders'], grants: ['write'] },
      ],
      'read',
      { allowed: false, code: 'no_matching_policy' },
    ],
  ])('%s', (_label, raw, grant, expected) => {
    const d = decideSession(policies(...raw), { principal: person('eng'), resource: 'orders', grant: grant as GrantName, now: NOW });
    expect(outcome(d)).toEqual(expected);
  });
});

describe('decideSession: max_session_duration', () => {
  const allowEng = (name: string, max?: number | string) => ({
    name,
    when: { groups: ['eng'] },
    resources: ['orders'],
    grants: ['read'],
    ...(max === undefined ? {} : { max_session_duration: max }),
  });

  it.each<[string, unknown[], number, Expected]>([
    ['no limit: no endsAt, however long the token lives', [allowEng('a')], NOW + 7200, { allowed: true, policy: 'a' }],
    ['no limit: no endsAt, however soon the token expires', [allowEng('a')], NOW + 1, { allowed: true, policy: 'a' }],
    ['limit shorter than the token', [allowEng('a', '30m')], NOW + 7200, { allowed: true, policy: 'a', endsAt: NOW + 1800 }],
    ['limit longer than the token: the session outlives the token', [allowEng('a', '8h')], NOW + 7200, { allowed: true, policy: 'a', endsAt: NOW + 28_800 }],
    ['a 5-minute CI token under a 1h limit gets the full hour', [allowEng('a', '1h')], NOW + 300, { allowed: true, policy: 'a', endsAt: NOW + 3600 }],
    ['a limit below a second is kept exactly', [allowEng('a', '500ms')], NOW + 7200, { allowed: true, policy: 'a', endsAt: NOW + 0.5 }],
    ['smallest of two limits', [allowEng('a', '1h'), allowEng('b', '10m')], NOW + 7200, { allowed: true, policy: 'b', endsAt: NOW + 600 }],
    ['a policy without a limit does not lift another policy\'s limit', [allowEng('a'), allowEng('b', '10m')], NOW + 7200, { allowed: true, policy: 'b', endsAt: NOW + 600 }],
    ['equal limits report the first by name', [allowEng('z', 600), allowEng('m', 600)], NOW + 7200, { allowed: true, policy: 'm', endsAt: NOW + 600 }],
    ['limit on a deny is ignored', [allowEng('a'), { ...allowEng('d', 60), effect: 'deny', grants: ['ddl'] }], NOW + 7200, { allowed: true, policy: 'a' }],
    [
      'limit on an allow for another grant is ignored',
      [allowEng('a'), { ...allowEng('w', 60), grants: ['write'] }],
      NOW + 7200,
      { allowed: true, policy: 'a' },
    ],
    [
      'limit on an allow for another principal is ignored',
      [allowEng('a'), { ...allowEng('ops', 60), when: { groups: ['ops'] } }],
      NOW + 7200,
      { allowed: true, policy: 'a' },
    ],
  ])('%s', (_label, raw, expiresAt, expected) => {
    const d = decideSession(policies(...raw), { principal: principal({ groups: ['eng'], expiresAt }), resource: 'orders', grant: 'read', now: NOW });
    expect(outcome(d)).toEqual(expected);
    if (d.allowed) expect('endsAt' in d).toBe('endsAt' in expected);
  });

  it('does not re-validate config: a limit of 0, which the config layer rejects, ends the session at once', () => {
    const zero: PolicyConfig = { name: 'a', effect: 'allow', when: { groups: ['eng'] }, resources: ['orders'], grants: ['read'], max_session_duration: 0 };
    const d = decideSession([zero], { principal: principal({ groups: ['eng'] }), resource: 'orders', grant: 'read', now: NOW });
    expect(outcome(d)).toEqual({ allowed: true, policy: 'a', endsAt: NOW });
  });
});

describe('decideSession: expired tokens', () => {
  it.each<[string, number, number]>([
    ['expiry equal to now', NOW, NOW],
    ['expiry in the past', NOW - 1, NOW],
    ['expiry long past', 0, NOW],
    ['expiry not a number', Number.NaN, NOW],
    ['expiry infinite', Number.POSITIVE_INFINITY, NOW],
    ['now not a number', NOW + 60, Number.NaN],
  ])('%s is token_expired, even for a dba', (_label, expiresAt, now) => {
    const d = decideSession(config, { principal: principal({ groups: ['dba'], expiresAt }), resource: 'orders', grant: 'read', now });
    expect(outcome(d)).toEqual({ allowed: false, code: 'token_expired' });
    expect(d.allowed ? '' : d.message).toMatch(/get a new token/);
  });

  it('a token one second from expiry is still accepted, and its session has no end', () => {
    const d = decideSession(config, { principal: principal({ groups: ['dba'], expiresAt: NOW + 1 }), resource: 'orders', grant: 'read', now: NOW });
    expect(outcome(d)).toEqual({ allowed: true, policy: 'dba-all' });
  });

  it('a token one second from expiry still gets the whole max_session_duration', () => {
    const d = decideSession(config, { principal: ciJob(), resource: 'orders', grant: 'read', now: NOW });
    const almostExpired = decideSession(config, { principal: { ...ciJob(), expiresAt: NOW + 1 }, resource: 'orders', grant: 'read', now: NOW });
    expect(outcome(almostExpired)).toEqual({ allowed: true, policy: 'ci-read', endsAt: NOW + 600 });
    expect(almostExpired).toEqual(d);
  });
});

describe('decideSession messages', () => {
  const secretClaims = { email: 'alice@secret.example', ssn: '078-05-1120', dept: 'sales' };

  it.each<[string, Principal, string, GrantName, string]>([
    ['deny names the policy, grant and resource', ciJob(), 'orders', 'write', 'policy "no-writes-for-ci" denies grant write on resource orders'],
    [
      'grant_not_allowed lists the grants the caller may ask for',
      person('eng', 'eng-writers'),
      'orders',
      'ddl',
      'policies "eng-orders-read", "eng-orders-write" allow resource orders but not grant ddl; grants you may ask for: read, write',
    ],
    [
      'a deny is reported before any missing allow',
      ciJob(),
      'billing',
      'ddl',
      'policy "no-writes-for-ci" denies grant ddl on resource billing',
    ],
    ['no_matching_policy names subject and groups', person('eng'), 'billing', 'read', 'no policy allows grant read on resource billing for subject alice (groups: eng)'],
    ['no_matching_policy with no groups', person(), 'orders', 'read', 'no policy allows grant read on resource orders for subject alice (no groups)'],
    [
      'untrusted resource names are quoted and escaped',
      person('eng'),
      'orders\nFATAL: fake',
      'read',
      'no policy allows grant read on resource "orders\\nFATAL: fake" for subject alice (groups: eng)',
    ],
  ])('%s', (_label, p, resource, grant, message) => {
    const d = decideSession(config, { principal: { ...p, claims: secretClaims }, resource, grant, now: NOW });
    expect(d.allowed).toBe(false);
    if (!d.allowed) {
      expect(d.message).toBe(message);
      expect(d.message).not.toMatch(/secret\.example|078-05|sales/);
    }
  });

  it('grant_not_allowed leaves denied grants out of the suggestions', () => {
    const raw = policies(
      { name: 'eng-most', when: { groups: ['eng'] }, resources: ['orders'], grants: ['read', 'write', 'ddl'] },
      { name: 'freeze', effect: 'deny', when: { groups: ['eng'] }, resources: ['*'], grants: ['write'] },
    );
    const d = decideSession(raw, { principal: person('eng'), resource: 'orders', grant: 'admin', now: NOW });
    expect(d.allowed ? '' : d.message).toBe(
      'policy "eng-most" allows resource orders but not grant admin; grants you may ask for: read, ddl',
    );
  });

  it('lists at most ten groups', () => {
    const groups = Array.from({ length: 25 }, (_, i) => `g${i}`);
    const d = decideSession(config, { principal: principal({ groups }), resource: 'orders', grant: 'read', now: NOW });
    expect(d.allowed ? '' : d.message).toBe(
      'no policy allows grant read on resource orders for subject alice (groups: g0, g1, g2, g3, g4, g5, g6, g7, g8, g9 and 15 more)',
    );
  });

  it('cuts long untrusted names short', () => {
    const d = decideSession(config, { principal: person(), resource: 'x'.repeat(10_000), grant: 'read', now: NOW });
    expect(d.allowed ? '' : d.message.length).toBeLessThan(400);
  });

  it('explains a request for an unknown grant name', () => {
    const d = decideSession(config, { principal: person('eng'), resource: 'orders', grant: 'superuser' as GrantName, now: NOW });
    expect(outcome(d)).toEqual({ allowed: false, code: 'grant_not_allowed', policy: 'eng-orders-read' });
    expect(d.allowed ? '' : d.message).toBe(
      'policy "eng-orders-read" allows resource orders but not grant superuser; grants you may ask for: read',
    );
  });
});

describe('allowedGrants', () => {
  it.each<[string, Principal, string, GrantName[]]>([
    ['dba on any resource', person('dba'), 'orders', ['read', 'write', 'ddl', 'admin']],
    ['eng on orders', person('eng'), 'orders', ['read']],
    ['eng writer on orders', person('eng', 'eng-writers'), 'orders', ['read', 'write']],
    ['eng on billing', person('eng'), 'billing', []],
    ['CI on orders: write denied', ciJob(), 'orders', ['read']],
    ['CI dba: writes still denied', ciJob('dba'), 'orders', ['read']],
    ['contractor dba on billing', person('dba', 'contractors'), 'billing', []],
    ['dba asking for "*"', person('dba'), '*', []],
    ['DBA (case variant)', person('DBA'), 'orders', []],
  ])('%s', (_label, p, resource, expected) => {
    expect(allowedGrants(config, p, resource)).toEqual(expected);
  });

  it('ignores expiry: it answers what the principal could ask for', () => {
    expect(allowedGrants(config, principal({ groups: ['eng'], expiresAt: NOW - 10 }), 'orders')).toEqual(['read']);
  });

  it('is empty without policies', () => {
    expect(allowedGrants([], person('dba'), 'orders')).toEqual([]);
    expect(outcome(decideSession([], { principal: person('dba'), resource: 'orders', grant: 'read', now: NOW }))).toEqual({
      allowed: false,
      code: 'no_matching_policy',
    });
  });
});

describe('policy issuer scoping', () => {
  const scoped = policies({ name: 'corp-dba', when: { issuer: IDP, groups: ['dba'] }, resources: ['*'], grants: ['read'] });

  it.each<[string, string, boolean]>([
    ['the named issuer', IDP, true],
    ['another issuer with the same group name', CI, false],
    ['an issuer that extends the named one', `${IDP}.evil.test`, false],
  ])('%s', (_label, issuer, allowed) => {
    const d = decideSession(scoped, { principal: principal({ issuer, groups: ['dba'] }), resource: 'orders', grant: 'read', now: NOW });
    expect(d.allowed).toBe(allowed);
  });
});
