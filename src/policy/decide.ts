import { GRANTS, type GrantName, type Permission, type PolicyConfig } from '../config/schema.js';
import type { Principal } from '../identity/principal.js';
import { byCodeUnits, showName, showPolicies, showPolicy, showPrincipal } from './format.js';
import { matchesPrincipal } from './match.js';

export interface SessionRequest {
  readonly principal: Principal;
  /** Resource name as the client asked for it (startup `database`). */
  readonly resource: string;
  readonly grant: GrantName;
  /** Epoch seconds; passed in so decisions are pure and testable. */
  readonly now: number;
  /** Approved time-boxed grants of this principal on this resource (from the approval store). */
  readonly accessGrants?: readonly AccessGrant[];
}

/** An approved access request: `grant` on the request's resource until `until`. */
export interface AccessGrant {
  readonly requestId: string;
  /** The policy whose access rule the request was made under. */
  readonly policy: string;
  readonly grant: GrantName;
  /** Epoch seconds at which the grant ends. */
  readonly until: number;
}

export type SessionDenialCode = 'policy_denied' | 'grant_not_allowed' | 'no_matching_policy' | 'token_expired';

export type SessionDecision =
  | {
      readonly allowed: true;
      readonly grant: GrantName;
      /**
       * The allow policy that bounds the session (smallest max_session_duration),
       * or else the first matching allow policy by name; for a session on an
       * access grant, the policy whose access rule the request was made under.
       */
      readonly policy: string;
      /**
       * Epoch seconds at which the session must end: now plus the smallest
       * max_session_duration among the matching allow policies; absent when none
       * sets one. The token expiry plays no part: it is checked at connect, and
       * a session may outlive a short-lived token (a 5-minute CI token, say).
       */
      readonly endsAt?: number;
      /** The access request whose grant opens the session, when no allow policy gives the grant. */
      readonly accessRequest?: string;
    }
  | {
      readonly allowed: false;
      readonly code: SessionDenialCode;
      readonly policy?: string;
      /** Safe to show the caller: names policies, resource, grant, subject and groups, never other claims. */
      readonly message: string;
    };

export type PermissionDecision =
  | { readonly allowed: true; readonly policy: string; readonly message: string }
  | {
      readonly allowed: false;
      readonly code: 'policy_denied' | 'no_matching_policy';
      readonly policy?: string;
      readonly message: string;
    };

/**
 * May this principal open a session on this resource with this grant?
 * The token must still be valid at `now`; after that only max_session_duration
 * bounds the session. A matching deny wins over every allow, and over access
 * grants; an access grant counts only when no allow policy gives the grant.
 * The outcome depends only on the sets of policies and access grants, never
 * on their order (ties are broken by name and request id).
 */
export function decideSession(policies: readonly PolicyConfig[], req: SessionRequest): SessionDecision {
  const { principal, resource, grant, now } = req;
  const expired = expiryProblem(principal.expiresAt, now);
  if (expired !== undefined) return { allowed: false, code: 'token_expired', message: expired };

  const onResource = sessionPoliciesFor(policies, principal, resource);
  const denying = onResource.filter((p) => p.effect === 'deny' && hasGrant(p, grant));
  if (denying.length > 0) {
    const policy = firstByName(denying).name;
    return {
      allowed: false,
      code: 'policy_denied',
      policy,
      message: `policy ${showPolicy(policy)} denies grant ${showName(grant)} on resource ${showName(resource)}`,
    };
  }

  const allowing = onResource.filter((p) => p.effect === 'allow' && hasGrant(p, grant));
  if (allowing.length > 0) return allow(allowing, grant, now);

  const granted = allowByAccess(policies, req);
  if (granted) return granted;

  const requestable = accessRulesFor(policies, principal, resource, grant).length > 0;
  const hint = `request time-boxed access: sluice access request ${showName(resource)} --grant ${showName(grant)} --for <duration> --reason <text>`;
  const allowsOthers = onResource.filter((p) => p.effect === 'allow');
  const open = openGrants(onResource);
  if (open.length > 0) {
    const verb = new Set(allowsOthers.map((p) => p.name)).size === 1 ? 'allows' : 'allow';
    return {
      allowed: false,
      code: 'grant_not_allowed',
      policy: firstByName(allowsOthers).name,
      message:
        `${showPolicies(allowsOthers.map((p) => p.name))} ${verb} resource ${showName(resource)} but not grant ${showName(grant)}; ` +
        `grants you may ask for: ${open.join(', ')}${requestable ? `; or ${hint}` : ''}`,
    };
  }

  return {
    allowed: false,
    code: 'no_matching_policy',
    message:
      `no policy allows grant ${showName(grant)} on resource ${showName(resource)} for ${showPrincipal(principal.subject, principal.groups)}` +
      (requestable ? `; ${hint}` : ''),
  };
}

/** The grants this principal could open a session with on this resource, in GRANTS order. */
export function allowedGrants(policies: readonly PolicyConfig[], principal: Principal, resource: string): GrantName[] {
  return openGrants(sessionPoliciesFor(policies, principal, resource));
}

/** May this principal use this Sluice API permission? A matching deny wins. */
export function decidePermission(
  policies: readonly PolicyConfig[],
  principal: Principal,
  permission: Permission,
): PermissionDecision {
  const matching = policies.filter(
    (p) => p.permissions !== undefined && p.permissions.includes(permission) && matchesPrincipal(p.when, principal),
  );
  const denying = matching.filter((p) => p.effect === 'deny');
  if (denying.length > 0) {
    const policy = firstByName(denying).name;
    return {
      allowed: false,
      code: 'policy_denied',
      policy,
      message: `policy ${showPolicy(policy)} denies permission ${showName(permission)}`,
    };
  }
  const allowing = matching.filter((p) => p.effect === 'allow');
  if (allowing.length > 0) {
    const policy = firstByName(allowing).name;
    return { allowed: true, policy, message: `policy ${showPolicy(policy)} grants permission ${showName(permission)}` };
  }
  return {
    allowed: false,
    code: 'no_matching_policy',
    message: `no policy grants permission ${showName(permission)} to ${showPrincipal(principal.subject, principal.groups)}`,
  };
}

/**
 * Non-finite times fail closed: a token whose expiry cannot be compared is
 * treated as expired rather than as never expiring.
 */
function expiryProblem(expiresAt: unknown, now: number): string | undefined {
  if (typeof expiresAt !== 'number' || !Number.isFinite(expiresAt) || !Number.isFinite(now)) {
    return 'the token has no usable expiry time; get a new token and connect again';
  }
  if (expiresAt <= now) {
    return `the token expired ${Math.floor(now - expiresAt)} seconds ago; get a new token and connect again`;
  }
  return undefined;
}

function allow(allowing: readonly PolicyConfig[], grant: GrantName, now: number): SessionDecision {
  const bounded = allowing.filter((p) => p.max_session_duration !== undefined);
  if (bounded.length === 0) return { allowed: true, grant, policy: firstByName(allowing).name };
  const tightest = bounded.reduce((a, b) => {
    const da = a.max_session_duration as number;
    const db = b.max_session_duration as number;
    return db < da || (db === da && byCodeUnits(b.name, a.name) < 0) ? b : a;
  });
  return { allowed: true, grant, policy: tightest.name, endsAt: now + (tightest.max_session_duration as number) };
}

/**
 * The session an approved access grant opens: exactly the grant requested
 * (no lesser grant rides along), only while its access rule still exists and
 * still matches, and never past the grant's end or the rule's
 * max_session_duration. Of several usable grants the one whose session
 * lasts longest wins.
 */
function allowByAccess(policies: readonly PolicyConfig[], req: SessionRequest): SessionDecision | undefined {
  const { principal, resource, grant, now } = req;
  const rules = accessRulesFor(policies, principal, resource, grant);
  let best: { requestId: string; policy: string; until: number; endsAt: number } | undefined;
  for (const g of req.accessGrants ?? []) {
    if (g.grant !== grant || !Number.isFinite(g.until) || !(g.until > now)) continue;
    const named = rules.filter((p) => p.name === g.policy);
    if (named.length === 0) continue;
    const bounds = named.flatMap((p) => (p.max_session_duration === undefined ? [] : [now + p.max_session_duration]));
    const endsAt = Math.min(g.until, ...bounds);
    const candidate = { requestId: g.requestId, policy: g.policy, until: g.until, endsAt };
    if (!best || lastsLonger(candidate, best)) best = candidate;
  }
  if (!best) return undefined;
  return { allowed: true, grant, policy: best.policy, endsAt: best.endsAt, accessRequest: best.requestId };
}

function lastsLonger(
  a: { requestId: string; policy: string; until: number; endsAt: number },
  b: { requestId: string; policy: string; until: number; endsAt: number },
): boolean {
  if (a.endsAt !== b.endsAt) return a.endsAt > b.endsAt;
  if (a.until !== b.until) return a.until > b.until;
  if (a.requestId !== b.requestId) return byCodeUnits(a.requestId, b.requestId) < 0;
  return byCodeUnits(a.policy, b.policy) < 0;
}

/** Policies with an access rule that lets this principal request this grant on this resource. */
export function accessRulesFor(policies: readonly PolicyConfig[], principal: Principal, resource: string, grant: GrantName): PolicyConfig[] {
  return policies.filter(
    (p) =>
      p.access !== undefined &&
      p.access.grants.includes(grant) &&
      p.resources !== undefined &&
      resource !== '*' &&
      (p.resources.includes(resource) || p.resources.includes('*')) &&
      matchesPrincipal(p.when, principal),
  );
}

/** Session policies (resources + grants) that cover this resource and match the principal. */
function sessionPoliciesFor(policies: readonly PolicyConfig[], principal: Principal, resource: string): PolicyConfig[] {
  return policies.filter((p) => coversResource(p, resource) && matchesPrincipal(p.when, principal));
}

/**
 * "*" in a policy covers every resource; a request naming "*" is not a
 * resource and matches nothing, so it cannot pick up wildcard policies by name.
 */
function coversResource(p: PolicyConfig, resource: string): boolean {
  if (p.resources === undefined || p.grants === undefined || resource === '*') return false;
  return p.resources.includes(resource) || p.resources.includes('*');
}

function hasGrant(p: PolicyConfig, grant: GrantName): boolean {
  return p.grants !== undefined && p.grants.includes(grant);
}

function openGrants(onResource: readonly PolicyConfig[]): GrantName[] {
  return GRANTS.filter(
    (g) =>
      onResource.some((p) => p.effect === 'allow' && hasGrant(p, g)) &&
      !onResource.some((p) => p.effect === 'deny' && hasGrant(p, g)),
  );
}

function firstByName(policies: readonly PolicyConfig[]): PolicyConfig {
  return policies.reduce((a, b) => (byCodeUnits(b.name, a.name) < 0 ? b : a));
}
