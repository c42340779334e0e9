import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GRANTS, type GrantName, type Permission, type PolicyConfig, type PrincipalMatch } from '../../src/config/schema.js';
import type { Principal } from '../../src/identity/principal.js';
import { allowedGrants, decidePermission, decideSession, matchesPrincipal } from '../../src/policy/index.js';
import { NOW } from './fixtures.js';

/*
 * Small pools of near-identical names, so generated policies and principals
 * collide often and the properties exercise both matches and near misses.
 */
const ISSUERS = ['https://idp.example.com', 'https://ci.example.com', 'https://idp.example.com/'];
const SUBJECTS = ['alice', 'Alice', 'alice ', 'bob', 'dba', ''];
const GROUPS = ['dba', 'DBA', 'dba-evil', 'dbas', ' dba', 'eng', 'ops'];
const RESOURCES = ['orders', 'Orders', 'billing'];
const CLAIM_NAMES = ['dept', 'level', 'roles', 'email_verified', '__proto__', 'constructor', 'toString', 'hasOwnProperty'];
const PERMISSIONS: Permission[] = ['audit:read', 'sessions:read', 'sessions:terminate'];
const POLICY_NAMES = ['a', 'b', 'c', 'ci', 'dba', 'z'];
const NEVER_ISSUER = 'https://never.invalid';

const scalar = fc.oneof(fc.constantFrom('sales', 'Sales', '1', 'true', '', 'x'), fc.constantFrom(0, 1, 3), fc.boolean());
const claimValue = fc.oneof(scalar, fc.array(scalar, { maxLength: 3 }), fc.dictionary(fc.constantFrom('id', 'x'), scalar));

/** Object.fromEntries defines own properties, so `__proto__` stays a plain claim as in a parsed token. */
const claimsArb = fc
  .array(fc.tuple(fc.constantFrom(...CLAIM_NAMES), claimValue), { maxLength: 5 })
  .map((entries) => Object.fromEntries(entries) as Record<string, unknown>);
const policyClaimsArb = fc
  .array(fc.tuple(fc.constantFrom(...CLAIM_NAMES), scalar), { maxLength: 3 })
  .map((entries) => Object.fromEntries(entries) as Record<string, string | number | boolean>);

const principalArb: fc.Arbitrary<Principal> = fc.record({
  issuer: fc.constantFrom(...ISSUERS),
  subject: fc.constantFrom(...SUBJECTS),
  kind: fc.constantFrom('person' as const, 'machine' as const),
  groups: fc.subarray(GROUPS),
  claims: claimsArb,
  expiresAt: fc.integer({ min: NOW + 1, max: NOW + 86_400 }),
});

const whenArb: fc.Arbitrary<PrincipalMatch> = fc.record(
  {
    issuer: fc.constantFrom(...ISSUERS),
    subjects: fc.subarray(SUBJECTS),
    groups: fc.subarray(GROUPS),
    kind: fc.constantFrom('person' as const, 'machine' as const),
    claims: policyClaimsArb,
  },
  { requiredKeys: [] },
);

const policyArb: fc.Arbitrary<PolicyConfig> = fc
  .record({
    name: fc.constantFrom(...POLICY_NAMES),
    effect: fc.constantFrom('allow' as const, 'deny' as const),
    when: whenArb,
    session: fc.option(
      fc.record({
        resources: fc.subarray([...RESOURCES, '*'], { minLength: 1 }),
        grants: fc.subarray([...GRANTS], { minLength: 1 }),
      }),
      { nil: undefined },
    ),
    permissions: fc.option(fc.subarray(PERMISSIONS, { minLength: 1 }), { nil: undefined }),
    max_session_duration: fc.option(fc.integer({ min: 0, max: 7200 }), { nil: undefined }),
  })
  .map(({ session, ...rest }) => ({ ...rest, ...(session ?? {}) }));

interface Req {
  principal: Principal;
  resource: string;
  grant: GrantName;
  now: number;
}
const reqArb: fc.Arbitrary<Req> = fc.record({
  principal: principalArb,
  resource: fc.constantFrom(...RESOURCES, '*'),
  grant: fc.constantFrom(...GRANTS),
  now: fc.constant(NOW),
});

/**
 * A `when` built from the principal's own attributes, so that generated
 * policy sets often hold several policies that match at once.
 */
function matchingWhen(p: Principal): fc.Arbitrary<PrincipalMatch> {
  const ownScalars = Object.entries(p.claims).filter(
    ([, v]) => typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean',
  ) as [string, string | number | boolean][];
  const fields: fc.Arbitrary<PrincipalMatch>[] = [
    fc.constant({ issuer: p.issuer }),
    fc.constant({ kind: p.kind }),
    fc.subarray(SUBJECTS).map((others) => ({ subjects: [...others, p.subject] })),
  ];
  if (p.groups.length > 0) fields.push(fc.constantFrom(...p.groups).map((g) => ({ groups: [g] })));
  if (ownScalars.length > 0) fields.push(fc.constantFrom(...ownScalars).map(([k, v]) => ({ claims: Object.fromEntries([[k, v]]) })));
  return fc.subarray(fields, { minLength: 1 }).chain((picked) => fc.tuple(...picked)).map((parts) => Object.assign({}, ...parts) as PrincipalMatch);
}

function policyFor(p: Principal): fc.Arbitrary<PolicyConfig> {
  return fc.tuple(policyArb, fc.oneof(whenArb, matchingWhen(p))).map(([pol, when]) => ({ ...pol, when }));
}

/** A request together with policies of which many match its principal. */
const scenarioArb = reqArb.chain((req) => fc.tuple(fc.constant(req), fc.array(policyFor(req.principal), { maxLength: 8 })));

/** A `when` that can never match `p`: one field is set to a value p cannot have. */
function unmatchableWhen(p: Principal): fc.Arbitrary<PrincipalMatch> {
  const killer = fc.constantFrom<PrincipalMatch>(
    { issuer: NEVER_ISSUER },
    { kind: p.kind === 'person' ? 'machine' : 'person' },
    { subjects: [] },
    { subjects: ['nobody-at-all'] },
    { groups: [] },
    { groups: GROUPS.filter((g) => !p.groups.includes(g)) },
    { claims: { never_present_claim: 'x' } },
  );
  return fc.oneof(
    fc.tuple(whenArb, killer).map(([w, k]) => ({ ...w, ...k })),
    fc.constantFrom<PrincipalMatch>({}, { claims: {} }),
  );
}

function unmatchablePolicies(p: Principal): fc.Arbitrary<PolicyConfig[]> {
  return fc.array(fc.tuple(policyArb, unmatchableWhen(p)).map(([pol, when]) => ({ ...pol, when })), { minLength: 1, maxLength: 5 });
}

function asAllow(p: PolicyConfig): PolicyConfig {
  return { ...p, effect: 'allow' };
}

/** max_session_duration of every allow policy that lets this request open its session. */
function matchingLimits(policies: readonly PolicyConfig[], req: Req): number[] {
  return policies
    .filter((p) => {
      const covers = p.resources !== undefined && (p.resources.includes(req.resource) || p.resources.includes('*'));
      return p.effect === 'allow' && covers && p.grants?.includes(req.grant) === true && matchesPrincipal(p.when, req.principal);
    })
    .flatMap((p) => (p.max_session_duration === undefined ? [] : [p.max_session_duration]));
}

function allDecisions(policies: readonly PolicyConfig[], req: Req) {
  return {
    session: decideSession(policies, req),
    grants: allowedGrants(policies, req.principal, req.resource),
    permissions: PERMISSIONS.map((perm) => decidePermission(policies, req.principal, perm)),
  };
}

describe('policy engine properties', () => {
  it('deny always wins: adding allow policies never lifts a matching deny', () => {
    fc.assert(
      fc.property(
        scenarioArb.chain(([req, base]) =>
          fc.tuple(fc.constant(req), fc.constant(base), fc.array(policyFor(req.principal).map(asAllow), { maxLength: 8 })),
        ),
        ([req, base, extraAllows]) => {
          const before = decideSession(base, req);
          fc.pre(!before.allowed && before.code === 'policy_denied');
          expect(decideSession([...base, ...extraAllows], req)).toEqual(before);
          expect(decideSession([...extraAllows, ...base], req)).toEqual(before);
        },
      ),
    );
  });

  it('deny always wins: a deny built to match overrides any policy set', () => {
    fc.assert(
      fc.property(
        scenarioArb.filter(([req]) => req.resource !== '*'),
        fc.boolean(),
        fc.constantFrom('subject', 'issuer', 'kind'),
        ([req, base], wildcard, by) => {
          const p = req.principal;
          const when: PrincipalMatch = by === 'issuer' ? { issuer: p.issuer } : by === 'subject' ? { subjects: [p.subject] } : { kind: p.kind };
          const deny: PolicyConfig = { name: 'the-deny', effect: 'deny', when, resources: [wildcard ? '*' : req.resource], grants: [req.grant] };
          const d = decideSession([...base, deny], req);
          expect(d.allowed ? undefined : d.code).toBe('policy_denied');
          expect(allowedGrants([...base, deny], p, req.resource)).not.toContain(req.grant);
        },
      ),
    );
  });

  it('deny always wins for API permissions', () => {
    fc.assert(
      fc.property(scenarioArb, fc.constantFrom(...PERMISSIONS), ([req, base], perm) => {
        const p = req.principal;
        const deny: PolicyConfig = { name: 'the-deny', effect: 'deny', when: { subjects: [p.subject] }, permissions: [perm] };
        const allows = base.map(asAllow);
        expect(decidePermission([...allows, deny], p, perm).allowed).toBe(false);
        expect(decidePermission([deny, ...allows], p, perm).allowed).toBe(false);
      }),
    );
  });

  it('policies whose when cannot match the principal never change a decision', () => {
    fc.assert(
      fc.property(
        scenarioArb.chain(([req, base]) => fc.tuple(fc.constant(req), fc.constant(base), unmatchablePolicies(req.principal))),
        ([req, base, extra]) => {
          for (const pol of extra) expect(matchesPrincipal(pol.when, req.principal)).toBe(false);
          const expected = allDecisions(base, req);
          expect(allDecisions([...base, ...extra], req)).toEqual(expected);
          expect(allDecisions([...extra, ...base], req)).toEqual(expected);
        },
      ),
    );
  });

  it('decisions never depend on policy order', () => {
    fc.assert(
      fc.property(
        scenarioArb.chain(([req, ps]) =>
          fc.tuple(fc.constant(req), fc.constant(ps), fc.shuffledSubarray(ps, { minLength: ps.length, maxLength: ps.length })),
        ),
        ([req, ordered, shuffled]) => {
          const expected = allDecisions(ordered, req);
          expect(allDecisions(shuffled, req)).toEqual(expected);
          expect(allDecisions([...ordered].reverse(), req)).toEqual(expected);
        },
      ),
    );
  });

  it('allowedGrants lists exactly the grants decideSession allows', () => {
    fc.assert(
      fc.property(scenarioArb, ([req, ps]) => {
        const allowed = GRANTS.filter((grant) => decideSession(ps, { ...req, grant }).allowed);
        expect(allowedGrants(ps, req.principal, req.resource)).toEqual(allowed);
      }),
    );
  });

  it('endsAt never exceeds now + any matching limit, and is now + the smallest of them', () => {
    fc.assert(
      fc.property(scenarioArb, ([req, ps]) => {
        const d = decideSession(ps, req);
        fc.pre(d.allowed);
        if (!d.allowed) return;
        const limits = matchingLimits(ps, req);
        fc.pre(limits.length > 0);
        for (const limit of limits) expect(d.endsAt).toBeLessThanOrEqual(req.now + limit);
        expect(d.endsAt).toBeGreaterThanOrEqual(req.now);
        expect(d.endsAt).toBe(req.now + Math.min(...limits));
      }),
    );
  });

  it('without limits there is no endsAt', () => {
    fc.assert(
      fc.property(scenarioArb, ([req, ps]) => {
        const d = decideSession(ps, req);
        fc.pre(d.allowed);
        if (!d.allowed) return;
        expect('endsAt' in d).toBe(matchingLimits(ps, req).length > 0);
      }),
    );
  });

  it('the token expiry never shortens an allowed session', () => {
    fc.assert(
      fc.property(scenarioArb, fc.integer({ min: 1, max: 86_400 }), ([req, ps], left) => {
        const d = decideSession(ps, req);
        fc.pre(d.allowed);
        const soon = decideSession(ps, { ...req, principal: { ...req.principal, expiresAt: req.now + left } });
        expect(soon).toEqual(d);
      }),
    );
  });

  it('an expired token is refused whatever the policies say', () => {
    fc.assert(
      fc.property(scenarioArb, fc.integer({ min: 0, max: 86_400 }), ([req, ps], ago) => {
        const d = decideSession(ps, { ...req, principal: { ...req.principal, expiresAt: req.now - ago } });
        expect(d.allowed ? undefined : d.code).toBe('token_expired');
      }),
    );
  });

  it('messages never carry claim values other than subject and groups', () => {
    const marker = fc.string({ minLength: 1, maxLength: 8 }).map((s) => `CLAIMVALUE${s}`);
    fc.assert(
      fc.property(
        scenarioArb,
        fc.array(fc.tuple(fc.constantFrom(...CLAIM_NAMES, 'email', 'ssn'), marker), { minLength: 1, maxLength: 5 }),
        ([req, ps], entries) => {
          const claims = { ...req.principal.claims, ...Object.fromEntries(entries) };
          const p = { ...req.principal, claims };
          const d = decideSession(ps, { ...req, principal: p });
          if (!d.allowed) expect(d.message).not.toContain('CLAIMVALUE');
          for (const perm of PERMISSIONS) expect(decidePermission(ps, p, perm).message).not.toContain('CLAIMVALUE');
        },
      ),
    );
  });

  it('never throws for arbitrary principals, claims and request names', () => {
    const anything = fc.anything({ withNullPrototype: true, withObjectString: true, withBoxedValues: true, withSparseArray: true, maxDepth: 3 });
    const wildPrincipal = fc.record({
      issuer: fc.oneof(fc.string(), anything),
      subject: fc.oneof(fc.string(), anything),
      kind: fc.oneof(fc.constantFrom('person', 'machine'), anything),
      groups: fc.oneof(fc.array(fc.string()), fc.array(anything), anything),
      claims: fc.oneof(fc.dictionary(fc.oneof(fc.string(), fc.constantFrom(...CLAIM_NAMES)), anything), anything),
      expiresAt: fc.oneof(fc.double(), fc.integer(), anything),
    }) as unknown as fc.Arbitrary<Principal>;
    const wildPolicy = fc
      .tuple(policyArb, fc.dictionary(fc.oneof(fc.string(), fc.constantFrom(...CLAIM_NAMES)), scalar, { maxKeys: 3 }))
      .map(([p, claims]) => ({ ...p, when: { ...p.when, claims } }));
    fc.assert(
      fc.property(
        fc.array(fc.oneof(policyArb, wildPolicy), { maxLength: 6 }),
        wildPrincipal,
        fc.string(),
        fc.oneof(fc.constantFrom(...GRANTS), fc.string()),
        fc.oneof(fc.double(), fc.integer()),
        (ps, p, resource, grant, now) => {
          const d = decideSession(ps, { principal: p, resource, grant: grant as GrantName, now });
          expect(typeof d.allowed).toBe('boolean');
          if (!d.allowed) expect(typeof d.message).toBe('string');
          expect(Array.isArray(allowedGrants(ps, p, resource))).toBe(true);
          for (const perm of PERMISSIONS) expect(typeof decidePermission(ps, p, perm).allowed).toBe('boolean');
          for (const pol of ps) expect(typeof matchesPrincipal(pol.when, p)).toBe('boolean');
        },
      ),
      { numRuns: 500 },
    );
  });
});
