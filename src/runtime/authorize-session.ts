import type { GrantName, ResourceConfig } from '../config/schema.js';
import type { ResolvedCredential } from '../config/load.js';
import type { Principal } from '../identity/principal.js';
import type { AccessGrant } from '../policy/decide.js';
import { decideSession } from '../policy/index.js';
import type { TerminationReason } from '../sessions/session.js';
import type { GatewayState } from './state.js';

export type SessionAuthorization =
  | {
      readonly ok: true;
      readonly resource: ResourceConfig;
      readonly credential: ResolvedCredential;
      readonly policy: string;
      readonly endsAt?: number;
      /** The access request whose time-boxed grant allows the session. */
      readonly accessRequest?: string;
      /** Why the session ends at endsAt when that is the access grant's end rather than max_session_duration. */
      readonly endReason?: TerminationReason;
    }
  | { readonly ok: false; readonly code: string; readonly sqlstate: string; readonly message: string };

/**
 * May this principal hold a session with this grant on this resource under
 * this configuration version? The one check used at connect and when a
 * reload re-authorizes open sessions: resource, policy (or an approved
 * time-boxed grant), and a backend credential for the grant.
 */
export function authorizeSession(
  state: GatewayState,
  principal: Principal,
  resourceName: string,
  grant: GrantName,
  now: number,
  accessGrants?: readonly AccessGrant[],
): SessionAuthorization {
  const resource = state.resources.get(resourceName);
  if (!resource) return { ok: false, code: 'resource_unknown', sqlstate: '3D000', message: `resource "${resourceName}" does not exist in Sluice` };
  const decision = decideSession(state.config.policies, { principal, resource: resource.name, grant, now, accessGrants });
  if (!decision.allowed) return { ok: false, code: decision.code, sqlstate: '42501', message: decision.message };
  const credential = state.credentials.get(resource.name)?.get(grant);
  if (!credential) {
    return {
      ok: false,
      code: 'grant_unavailable',
      sqlstate: '42501',
      message: `resource "${resource.name}" has no backend credential for grant ${grant}; ask the Sluice operator`,
    };
  }
  const used = decision.accessRequest === undefined ? undefined : accessGrants?.find((g) => g.requestId === decision.accessRequest);
  return {
    ok: true,
    resource,
    credential,
    policy: decision.policy,
    endsAt: decision.endsAt,
    ...(used ? { accessRequest: used.requestId } : {}),
    ...(used && decision.endsAt === used.until ? { endReason: accessExpired(used, resource.name) } : {}),
  };
}

/** How a session on a time-boxed grant ends when the grant does. */
export function accessExpired(grant: AccessGrant, resource: string): TerminationReason {
  return {
    code: 'access_expired',
    sqlstate: '57P01',
    message: `access request ${grant.requestId} (grant ${grant.grant} on ${resource}) expired at ${new Date(Math.round(grant.until * 1000)).toISOString()}; request access again`,
  };
}

/** The service's active grants in the form decisions take (epoch seconds). */
export function accessGrantsOf(active: readonly { requestId: string; policy: string; grant: GrantName; until: Date }[]): AccessGrant[] {
  return active.map((a) => ({ requestId: a.requestId, policy: a.policy, grant: a.grant, until: a.until.getTime() / 1000 }));
}
