import type { JWTPayload } from 'jose';
import { AuthenticationError } from '../errors.js';
import type { Principal } from './principal.js';

const MAX_GROUPS = 1000;

/**
 * Reads the groups claim: an array of strings, or one string separated by
 * spaces or commas (as some IdPs and CI platforms send it). A dotted name such
 * as `realm_access.roles` walks into nested objects when no claim has that
 * literal name. Anything else yields no groups rather than an error, so a
 * missing claim never locks a principal out of policies that need no group.
 */
export function groupsFromClaims(payload: JWTPayload, claim: string, prefix: string): string[] {
  const raw = claimValue(payload, claim);
  const names = typeof raw === 'string' ? raw.split(/[\s,]+/) : Array.isArray(raw) ? raw.filter((g): g is string => typeof g === 'string') : [];
  const groups = new Set<string>();
  for (const name of names) {
    const trimmed = name.trim();
    if (trimmed) groups.add(prefix + trimmed);
    if (groups.size >= MAX_GROUPS) break;
  }
  return [...groups];
}

function claimValue(payload: JWTPayload, claim: string): unknown {
  if (Object.hasOwn(payload, claim)) return payload[claim];
  let value: unknown = payload;
  for (const part of claim.split('.')) {
    if (typeof value !== 'object' || value === null || Array.isArray(value) || !Object.hasOwn(value, part)) return undefined;
    value = (value as Record<string, unknown>)[part];
  }
  return value;
}

/** Builds the principal from a payload whose signature and claims have been verified. */
export function principalFromClaims(
  payload: JWTPayload,
  opts: { issuer: string; kind: Principal['kind']; groupsClaim: string; groupPrefix: string },
): Principal {
  if (typeof payload.sub !== 'string' || payload.sub.length === 0) {
    throw new AuthenticationError('claim_missing', `the token has no sub claim; ask the issuer ${opts.issuer} for a token that names its subject`);
  }
  return {
    issuer: opts.issuer,
    subject: payload.sub,
    kind: opts.kind,
    groups: groupsFromClaims(payload, opts.groupsClaim, opts.groupPrefix),
    claims: payload,
    expiresAt: payload.exp as number,
  };
}
