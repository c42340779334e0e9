import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GRANTS, type GrantName, type PolicyConfig } from '../../src/config/schema.js';
import type { AccessGrant } from '../../src/policy/decide.js';
import { decideSession } from '../../src/policy/index.js';
import { NOW, policies, principal } from './fixtures.js';

const approvers = [{ groups: ['dba'] }];
const config = policies(
  { name: 'dev-read', when: { groups: ['dev'] }, resources: ['orders'], grants: ['read'] },
  { name: 'dev-write-access', when: { groups: ['dev'] }, resources: ['orders'], access: { grants: ['write', 'ddl'], max_duration: '8h', approvers } },
  { name: 'dba', when: { groups: ['dba'] }, resources: ['*'], grants: ['read', 'write', 'ddl'], max_session_duration: '1h' },
);
const dev = principal({ subject: 'alice', groups: ['dev'] });
const grant = (requestId: string, g: GrantName, until: number, policy = 'dev-write-access'): AccessGrant => ({ requestId, policy, grant: g, until });

function decide(p: readonly PolicyConfig[], g: GrantName, accessGrants?: readonly AccessGrant[], who = dev, resource = 'orders') {
  return decideSession(p, { principal: who, resource, grant: g, now: NOW, accessGrants });
}

describe('decideSession with access grants', () => {
  it('opens the session on the grant, names the request, and ends it when the grant ends', () => {
    const d = decide(config, 'write', [grant('apr_a', 'write', NOW + 600)]);
    expect(d).toEqual({ allowed: true, grant: 'write', policy: 'dev-write-access', endsAt: NOW + 600, accessRequest: 'apr_a' });
  });

  it('without a grant refuses, and says that access can be requested', () => {
    const d = decide(config, 'write');
    expect(d.allowed).toBe(false);
    if (d.allowed) return;
    expect(d.code).toBe('grant_not_allowed');
    expect(d.message).toBe(
      'policy "dev-read" allows resource orders but not grant write; grants you may ask for: read; or request time-boxed access: sluice access request orders --grant write --for <duration> --reason <text>',
    );
  });

  it('hints at access requests also when no policy allows anything on the resource', () => {
    const p = policies({ name: 'ask', when: { groups: ['dev'] }, resources: ['orders'], access: { grants: ['write'], approvers } });
    const d = decide(p, 'write');
    expect(d.allowed ? undefined : d.message).toMatch(/^no policy allows grant write on resource orders for subject alice \(groups: dev\); request time-boxed access: sluice access request orders --grant write --for <duration> --reason <text>$/);
  });

  it('gives no hint where no access rule would let the principal ask', () => {
    const d = decide(config, 'admin');
    expect(d.allowed ? '' : d.message).not.toContain('time-boxed');
    const other = decide(config, 'write', undefined, principal({ subject: 'bob', groups: ['ops'] }));
    expect(other.allowed ? '' : other.message).not.toContain('time-boxed');
  });

  it('a deny wins over an access grant', () => {
    const p = [...config, ...policies({ name: 'freeze', effect: 'deny', when: { groups: ['dev'] }, resources: ['*'], grants: ['write'] })];
    const d = decide(p, 'write', [grant('apr_a', 'write', NOW + 600)]);
    expect(d).toMatchObject({ allowed: false, code: 'policy_denied', policy: 'freeze' });
    expect(d.allowed ? '' : d.message).not.toContain('time-boxed');
  });

  it('ignores a grant that has ended, or ends exactly now', () => {
    expect(decide(config, 'write', [grant('apr_a', 'write', NOW - 1)]).allowed).toBe(false);
    expect(decide(config, 'write', [grant('apr_a', 'write', NOW)]).allowed).toBe(false);
    expect(decide(config, 'write', [grant('apr_a', 'write', Number.NaN)]).allowed).toBe(false);
  });

  it('covers exactly the grant requested: write access opens neither read through it nor ddl', () => {
    const d = decide(config, 'ddl', [grant('apr_a', 'write', NOW + 600)]);
    expect(d.allowed).toBe(false);
    const read = decide(config, 'read', [grant('apr_a', 'write', NOW + 600)]);
    expect(read).toEqual({ allowed: true, grant: 'read', policy: 'dev-read' });
  });

  it('an allow policy for the grant wins over an access grant', () => {
    const d = decide(config, 'write', [grant('apr_a', 'write', NOW + 600)], principal({ subject: 'alice', groups: ['dev', 'dba'] }));
    expect(d).toEqual({ allowed: true, grant: 'write', policy: 'dba', endsAt: NOW + 3600 });
  });

  it('uses the longest-lasting of several grants', () => {
    const d = decide(config, 'write', [grant('apr_short', 'write', NOW + 60), grant('apr_long', 'write', NOW + 900), grant('apr_mid', 'write', NOW + 300)]);
    expect(d).toMatchObject({ allowed: true, accessRequest: 'apr_long', endsAt: NOW + 900 });
  });

  it("ends at the access rule's max_session_duration when that comes first", () => {
    const p = policies({ name: 'ask', when: { groups: ['dev'] }, resources: ['orders'], access: { grants: ['write'], approvers }, max_session_duration: 120 });
    expect(decide(p, 'write', [grant('apr_a', 'write', NOW + 600, 'ask')])).toEqual({ allowed: true, grant: 'write', policy: 'ask', endsAt: NOW + 120, accessRequest: 'apr_a' });
    expect(decide(p, 'write', [grant('apr_a', 'write', NOW + 60, 'ask')])).toMatchObject({ endsAt: NOW + 60 });
  });

  it('a grant counts only while its access rule exists, still matches, and still lists the grant', () => {
    const g = [grant('apr_a', 'write', NOW + 600)];
    expect(decide(config.filter((p) => p.name !== 'dev-write-access'), 'write', g).allowed).toBe(false);
    expect(decide(config, 'write', g, principal({ subject: 'alice', groups: ['ops'] })).allowed).toBe(false);
    const narrowed = policies({ name: 'dev-write-access', when: { groups: ['dev'] }, resources: ['orders'], access: { grants: ['ddl'], approvers } });
    expect(decide(narrowed, 'write', g).allowed).toBe(false);
    expect(decide(config, 'write', [grant('apr_a', 'write', NOW + 600, 'dev-read')]).allowed).toBe(false);
  });

  it('a grant on one resource opens nothing on another, nor on "*"', () => {
    const p = policies({ name: 'ask', when: { groups: ['dev'] }, resources: ['*'], access: { grants: ['write'], approvers } });
    expect(decide(p, 'write', [grant('apr_a', 'write', NOW + 600, 'ask')], dev, '*').allowed).toBe(false);
    expect(decide(config, 'write', [grant('apr_a', 'write', NOW + 600)], dev, 'billing').allowed).toBe(false);
  });

  it('an expired token is refused whatever access grants exist', () => {
    const d = decide(config, 'write', [grant('apr_a', 'write', NOW + 600)], principal({ groups: ['dev'], expiresAt: NOW - 5 }));
    expect(d).toMatchObject({ allowed: false, code: 'token_expired' });
  });
});

describe('decideSession with access grants: properties', () => {
  const NAMES = ['a', 'b', 'ask', 'z'];
  const policyArb: fc.Arbitrary<PolicyConfig> = fc
    .record({
      name: fc.constantFrom(...NAMES),
      effect: fc.constantFrom('allow' as const, 'deny' as const),
      groups: fc.subarray(['dev', 'ops'], { minLength: 1 }),
      resources: fc.subarray(['orders', 'billing', '*'], { minLength: 1 }),
      grants: fc.option(fc.subarray([...GRANTS], { minLength: 1 }), { nil: undefined }),
      access: fc.option(fc.subarray([...GRANTS], { minLength: 1 }), { nil: undefined }),
      max_session_duration: fc.option(fc.integer({ min: 1, max: 7200 }), { nil: undefined }),
    })
    .map(({ groups, grants, access, ...rest }) =>
      policies({
        ...rest,
        when: { groups },
        ...(grants ? { grants } : {}),
        ...(access && rest.effect === 'allow' ? { access: { grants: access, approvers } } : {}),
      })[0]!,
    );
  /** An access rule that matches the principal in most scenarios, so that access grants are often in play. */
  const accessRuleArb: fc.Arbitrary<PolicyConfig> = fc
    .record({
      name: fc.constantFrom(...NAMES),
      resources: fc.constantFrom(['orders'], ['*'], ['orders', 'billing']),
      access: fc.subarray([...GRANTS], { minLength: 1 }),
      max_session_duration: fc.option(fc.integer({ min: 1, max: 7200 }), { nil: undefined }),
    })
    .map(({ access, ...rest }) => policies({ ...rest, when: { groups: ['dev'] }, access: { grants: access, approvers } })[0]!);
  const shuffled = <T>(xs: readonly T[]) => fc.shuffledSubarray([...xs], { minLength: xs.length, maxLength: xs.length });
  /** Grants mostly for the grant asked for, under access rules of the policy set, so that many of them can open the session. */
  const grantArb = (names: readonly string[], asked: GrantName): fc.Arbitrary<AccessGrant> =>
    fc.record({
      requestId: fc.constantFrom('apr_1', 'apr_2', 'apr_3', 'apr_4'),
      policy: fc.constantFrom(...names, 'z'),
      grant: fc.oneof({ arbitrary: fc.constant(asked), weight: 3 }, { arbitrary: fc.constantFrom(...GRANTS), weight: 1 }),
      until: fc.integer({ min: NOW - 100, max: NOW + 7200 }),
    });
  const scenario = fc
    .record({
      rule: accessRuleArb,
      others: fc.array(policyArb, { maxLength: 5 }),
      groups: fc.constantFrom(['dev'], ['dev'], ['dev', 'ops'], ['ops'], []),
      resource: fc.constantFrom('orders', 'orders', 'billing', '*'),
    })
    .chain(({ rule, others, ...s }) =>
      fc
        .tuple(shuffled([...others, rule]), fc.oneof({ arbitrary: fc.constantFrom(...rule.access!.grants), weight: 3 }, { arbitrary: fc.constantFrom(...GRANTS), weight: 1 }))
        .chain(([all, asked]) => {
          const names = all.filter((p) => p.access !== undefined).map((p) => p.name);
          return fc.array(grantArb(names, asked), { maxLength: 6 }).map((grants) => ({ ...s, policies: all, grant: asked, grants }));
        }),
    );

  it('the order of policies and of access grants never changes the decision', () => {
    fc.assert(
      fc.property(
        scenario.chain((s) => fc.tuple(fc.constant(s), shuffled(s.policies), shuffled(s.grants))),
        ([s, policies2, grants2]) => {
          const who = principal({ groups: s.groups });
          const a = decide(s.policies, s.grant, s.grants, who, s.resource);
          const b = decide(policies2, s.grant, grants2, who, s.resource);
          expect(b).toEqual(a);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('access grants only ever add sessions on the grant asked for, never past the grant, never against a deny', () => {
    fc.assert(
      fc.property(scenario, (s) => {
        const who = principal({ groups: s.groups });
        const without = decide(s.policies, s.grant, [], who, s.resource);
        const withGrants = decide(s.policies, s.grant, s.grants, who, s.resource);
        if (without.allowed) {
          expect(withGrants).toEqual(without);
          return;
        }
        if (without.code === 'policy_denied') expect(withGrants).toEqual(without);
        if (!withGrants.allowed) return;
        const used = s.grants.filter((g) => g.requestId === withGrants.accessRequest && g.grant === s.grant && g.policy === withGrants.policy);
        expect(used.length).toBeGreaterThan(0);
        expect(used.some((g) => g.until > NOW && withGrants.endsAt !== undefined && withGrants.endsAt <= g.until)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });
});
