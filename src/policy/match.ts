import type { PrincipalMatch } from '../config/schema.js';
import type { Principal } from '../identity/principal.js';

type ClaimValue = string | number | boolean;

/**
 * Whether a policy's `when` matches a principal. Every given field must match;
 * `subjects` and `groups` match when any entry is equal. All comparisons are
 * exact: identity strings come from the IdP verbatim, and any normalisation
 * here (case folding, trimming, prefixes) would let one identity pass for another.
 *
 * A `when` that constrains nothing matches nothing, so a policy emptied by a
 * mistake cannot open access to everyone. An empty `claims` object is no
 * constraint; an empty `subjects` or `groups` list matches no one.
 */
export function matchesPrincipal(m: PrincipalMatch, p: Principal): boolean {
  let constrained = false;

  if (m.issuer !== undefined) {
    constrained = true;
    if (p.issuer !== m.issuer) return false;
  }
  if (m.kind !== undefined) {
    constrained = true;
    if (p.kind !== m.kind) return false;
  }
  if (m.subjects !== undefined) {
    constrained = true;
    if (typeof p.subject !== 'string' || !m.subjects.includes(p.subject)) return false;
  }
  if (m.groups !== undefined) {
    constrained = true;
    const groups = Array.isArray(p.groups) ? p.groups : [];
    if (!m.groups.some((g) => groups.includes(g))) return false;
  }
  if (m.claims !== undefined) {
    for (const name of Object.keys(m.claims)) {
      constrained = true;
      if (!claimMatches(p.claims, name, m.claims[name] as ClaimValue)) return false;
    }
  }
  return constrained;
}

/**
 * Reads only an own data property, so `__proto__`, `constructor` or
 * `toString` never resolve through the prototype chain and no getter runs.
 */
function ownClaim(claims: unknown, name: string): { value: unknown } | undefined {
  if (typeof claims !== 'object' || claims === null) return undefined;
  const desc = Object.getOwnPropertyDescriptor(claims, name);
  if (desc === undefined || !('value' in desc)) return undefined;
  return { value: desc.value };
}

function claimMatches(claims: unknown, name: string, expected: ClaimValue): boolean {
  if (!isScalar(expected)) return false;
  const found = ownClaim(claims, name);
  if (found === undefined) return false;
  const actual = found.value;
  if (Array.isArray(actual)) return actual.some((v) => sameScalar(v, expected));
  return sameScalar(actual, expected);
}

function isScalar(v: unknown): v is ClaimValue {
  return typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean';
}

/** Type and value: "1" is not 1, "true" is not true; objects never equal a scalar. */
function sameScalar(actual: unknown, expected: ClaimValue): boolean {
  return typeof actual === typeof expected && actual === expected;
}
