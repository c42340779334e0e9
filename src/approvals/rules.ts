import { createHmac } from 'node:crypto';
import type { AccessRuleConfig, ApprovalRuleConfig, GrantName, PolicyConfig } from '../config/schema.js';
import { ruleMatches } from '../guard/index.js';
import type { Principal, PrincipalRef } from '../identity/principal.js';
import { byCodeUnits, showName, showPolicy } from '../policy/format.js';
import { accessRulesFor } from '../policy/index.js';
import { matchesPrincipal } from '../policy/match.js';
import type { StatementFacts } from '../sql/index.js';
import type { ApprovalRequest, Requester } from './types.js';

/** The approval rule a statement falls under, from the policy that holds it. */
export interface Hold {
  readonly policy: string;
  readonly rule: ApprovalRuleConfig;
}

function covers(p: PolicyConfig, resource: string): boolean {
  return p.resources !== undefined && resource !== '*' && (p.resources.includes(resource) || p.resources.includes('*'));
}

/** Whether any approval rule could hold a statement of this principal on this resource: when none can, nothing needs judging. */
export function holdsPossible(policies: readonly PolicyConfig[], principal: Principal, resource: string): boolean {
  return policies.some((p) => p.approval !== undefined && covers(p, resource) && matchesPrincipal(p.when, principal));
}

/**
 * Which approval rule holds this message, if any. A statement (or the body an
 * EXECUTE runs) matching any rule is held. When several match, a rule without
 * a row threshold wins (the statement is held whatever it changes); among
 * threshold rules the lowest threshold wins; ties go by policy name. Pure.
 */
export function holdFor(policies: readonly PolicyConfig[], principal: Principal, resource: string, statements: readonly StatementFacts[]): Hold | undefined {
  const matching = policies.filter(
    (p) =>
      p.approval !== undefined &&
      covers(p, resource) &&
      matchesPrincipal(p.when, principal) &&
      // An EXECUTE runs its prepared body; a PREPARE runs nothing, so it is held (if at all) when executed.
      statements.some((f) => (f.kind === 'prepare' ? false : ruleMatches(p.approval!.statements, f)) || (f.kind === 'execute' && f.body ? ruleMatches(p.approval!.statements, f.body) : false)),
  );
  if (matching.length === 0) return undefined;
  const threshold = (p: PolicyConfig) => p.approval!.rows_over ?? -1;
  const best = matching.reduce((a, b) => {
    const ta = threshold(a);
    const tb = threshold(b);
    return tb < ta || (tb === ta && byCodeUnits(b.name, a.name) < 0) ? b : a;
  });
  return { policy: best.name, rule: best.approval! };
}

export type DecideRefusal = 'rule_gone' | 'self_approval' | 'not_approver';

/**
 * May this principal decide this request? Judged with the configuration in
 * force now, so removing someone from approvers takes effect at once. The
 * requester never may, whatever the approver list says.
 */
export function mayDecide(policies: readonly PolicyConfig[], request: ApprovalRequest, principal: Principal): { ok: true } | { ok: false; code: DecideRefusal; message: string } {
  const p = policies.find((x) => x.name === request.rule && (request.kind === 'statement' ? x.approval : x.access) !== undefined);
  const rule = request.kind === 'statement' ? p?.approval : p?.access;
  if (!p || !rule) {
    return { ok: false, code: 'rule_gone', message: `policy ${showPolicy(request.rule)} no longer holds ${request.kind === 'statement' ? 'statements' : 'access requests'}; the request cannot be decided` };
  }
  if (principal.issuer === request.requester.issuer && principal.subject === request.requester.subject) {
    return { ok: false, code: 'self_approval', message: `${showName(principal.subject)} made request ${request.id} and cannot decide it; ask another approver` };
  }
  if (!rule.approvers.some((m) => matchesPrincipal(m, principal))) {
    return { ok: false, code: 'not_approver', message: `${showName(principal.subject)} is not an approver under policy ${showPolicy(p.name)}` };
  }
  return { ok: true };
}

/** Whether the principal may see a request: its requester, or someone who may decide it. */
export function maySee(policies: readonly PolicyConfig[], request: ApprovalRequest, principal: Principal): boolean {
  if (principal.issuer === request.requester.issuer && principal.subject === request.requester.subject) return true;
  const d = mayDecide(policies, request, principal);
  return d.ok;
}

/** The access rule under which this principal may ask for this grant on this resource for this long. */
export function accessRuleFor(
  policies: readonly PolicyConfig[],
  principal: Principal,
  resource: string,
  grant: GrantName,
  seconds: number,
): { ok: true; policy: string; rule: AccessRuleConfig } | { ok: false; code: 'no_access_rule' | 'duration_too_long'; message: string } {
  const matching = accessRulesFor(policies, principal, resource, grant).sort((a, b) => byCodeUnits(a.name, b.name));
  if (matching.length === 0) {
    return { ok: false, code: 'no_access_rule', message: `no policy lets ${showName(principal.subject)} request grant ${showName(grant)} on resource ${showName(resource)}` };
  }
  const fits = matching.find((p) => seconds <= p.access!.max_duration);
  if (!fits) {
    const longest = Math.max(...matching.map((p) => p.access!.max_duration));
    return { ok: false, code: 'duration_too_long', message: `grant ${showName(grant)} on resource ${showName(resource)} may be requested for at most ${longest} seconds` };
  }
  return { ok: true, policy: fits.name, rule: fits.access! };
}

/**
 * Whether an approved access grant still holds under the policies in force:
 * the policy it was approved under still has an access rule that matches the
 * principal, covers the resource, lists the grant and allows its duration.
 * Other access policies, added or removed, play no part.
 */
export function accessStillAllowed(policies: readonly PolicyConfig[], principal: Principal, request: ApprovalRequest): boolean {
  const access = request.access;
  if (!access) return false;
  return accessRulesFor(policies, principal, request.resource, access.grant).some((p) => p.name === request.rule && p.access!.max_duration >= access.duration);
}

/**
 * What a fail-fast re-run must match to use an approval: the same principal,
 * resource, statement text (as sent, before any redaction) and parameter
 * bytes (by their digest). Keyed, because the text may hold a password
 * literal the request shows redacted: without the key, whoever sees the hash
 * could test guesses against it.
 */
export function statementHash(key: Buffer, requester: PrincipalRef, resource: string, text: string, paramsDigest: string | undefined): string {
  return createHmac('sha256', key)
    .update(JSON.stringify([requester.issuer, requester.subject, resource, text, paramsDigest ?? null]))
    .digest('hex');
}

/** Claims that say which pipeline a machine token belongs to (GitHub Actions, GitLab CI, Drone). */
const CI_CLAIMS = ['repository', 'workflow', 'job_workflow_ref', 'ref', 'sha', 'run_id', 'run_attempt', 'actor', 'project_path', 'pipeline_id', 'job_id', 'build', 'repo', 'pipeline_source', 'environment'];

export function requesterOf(principal: Principal): Requester {
  const ci: Record<string, string> = {};
  for (const c of CI_CLAIMS) {
    const v = principal.claims[c];
    if (typeof v === 'string' || typeof v === 'number') ci[c] = String(v).slice(0, 200);
  }
  return {
    issuer: principal.issuer,
    subject: principal.subject,
    kind: principal.kind,
    groups: [...principal.groups],
    ...(Object.keys(ci).length > 0 ? { ci } : {}),
  };
}
