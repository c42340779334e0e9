import type { GrantName, ResourceConfig } from '../config/schema.js';
import type { ResolvedCredential } from '../config/load.js';
import type { Principal } from '../identity/principal.js';
import { decideSession } from '../policy/index.js';
import type { GatewayState } from './state.js';

export type SessionAuthorization =
  | { readonly ok: true; readonly resource: ResourceConfig; readonly credential: ResolvedCredential; readonly policy: string; readonly endsAt?: number }
  | { readonly ok: false; readonly code: string; readonly sqlstate: string; readonly message: string };

/**
 * May this principal hold a session with this grant on this resource under
 * this configuration version? The one check used at connect and when a
 * reload re-authorizes open sessions: resource, policy, and a backend
 * credential for the grant.
 */
export function authorizeSession(state: GatewayState, principal: Principal, resourceName: string, grant: GrantName, now: number): SessionAuthorization {
  const resource = state.resources.get(resourceName);
  if (!resource) return { ok: false, code: 'resource_unknown', sqlstate: '3D000', message: `resource "${resourceName}" does not exist in Sluice` };
  const decision = decideSession(state.config.policies, { principal, resource: resource.name, grant, now });
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
  return { ok: true, resource, credential, policy: decision.policy, endsAt: decision.endsAt };
}
