import { describe, expect, it } from 'vitest';
import type { Permission } from '../../src/config/schema.js';
import type { Principal } from '../../src/identity/principal.js';
import { decidePermission } from '../../src/policy/index.js';
import { CI, policies, principal } from './fixtures.js';

const config = policies(
  { name: 'auditors', when: { groups: ['auditors'] }, permissions: ['audit:read', 'sessions:read'] },
  { name: 'ops', when: { groups: ['ops'] }, permissions: ['sessions:read', 'sessions:terminate'] },
  { name: 'no-terminate-for-machines', effect: 'deny', when: { kind: 'machine' }, permissions: ['sessions:terminate'] },
  { name: 'dba-all', when: { groups: ['dba'] }, resources: ['*'], grants: ['read', 'write', 'ddl', 'admin'] },
  { name: 'suspended', effect: 'deny', when: { subjects: ['mallory'] }, permissions: ['audit:read', 'sessions:read', 'sessions:terminate'] },
);

const person = (...groups: string[]): Principal => principal({ groups });
const robot = (...groups: string[]): Principal => principal({ issuer: CI, subject: 'deploy-bot', kind: 'machine', groups });

describe('decidePermission', () => {
  it.each<[string, Principal, Permission, { allowed: boolean; policy?: string; code?: string }]>([
    ['auditor reads the audit log', person('auditors'), 'audit:read', { allowed: true, policy: 'auditors' }],
    ['auditor cannot terminate sessions', person('auditors'), 'sessions:terminate', { allowed: false, code: 'no_matching_policy' }],
    ['ops terminates sessions', person('ops'), 'sessions:terminate', { allowed: true, policy: 'ops' }],
    ['auditor and ops: first allow by name', person('ops', 'auditors'), 'sessions:read', { allowed: true, policy: 'auditors' }],
    ['machine in ops cannot terminate (deny wins)', robot('ops'), 'sessions:terminate', { allowed: false, code: 'policy_denied', policy: 'no-terminate-for-machines' }],
    ['machine in ops still reads sessions', robot('ops'), 'sessions:read', { allowed: true, policy: 'ops' }],
    ['suspended subject in every group', principal({ subject: 'mallory', groups: ['auditors', 'ops'] }), 'audit:read', { allowed: false, code: 'policy_denied', policy: 'suspended' }],
    ['subject Mallory is another subject', principal({ subject: 'Mallory', groups: ['auditors'] }), 'audit:read', { allowed: true, policy: 'auditors' }],
    ['session grants give no API permission', person('dba'), 'audit:read', { allowed: false, code: 'no_matching_policy' }],
    ['group Auditors (case variant)', person('Auditors'), 'audit:read', { allowed: false, code: 'no_matching_policy' }],
    ['group auditors-evil', person('auditors-evil'), 'audit:read', { allowed: false, code: 'no_matching_policy' }],
    ['group " auditors"', person(' auditors'), 'audit:read', { allowed: false, code: 'no_matching_policy' }],
  ])('%s', (_label, p, permission, expected) => {
    const d = decidePermission(config, p, permission);
    const { message: _message, ...rest } = d;
    expect(rest).toEqual(expected);
  });

  it.each<[string, Principal, Permission, string]>([
    ['allow', person('ops'), 'sessions:terminate', 'policy "ops" grants permission sessions:terminate'],
    ['deny', robot('ops'), 'sessions:terminate', 'policy "no-terminate-for-machines" denies permission sessions:terminate'],
    ['no policy', principal({ groups: ['eng'], claims: { email: 'a@secret.example' } }), 'audit:read', 'no policy grants permission audit:read to subject alice (groups: eng)'],
  ])('message on %s', (_label, p, permission, message) => {
    expect(decidePermission(config, p, permission).message).toBe(message);
  });

  it('session policies for the same principal never open API permissions', () => {
    const sessionOnly = policies({ name: 'everything', when: { groups: ['ops'] }, resources: ['*'], grants: ['admin'] });
    expect(decidePermission(sessionOnly, person('ops'), 'sessions:terminate').allowed).toBe(false);
  });
});
