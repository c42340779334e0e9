/**
 * Who is on the other end. Identity is (issuer, subject); email is a claim,
 * never an identity.
 */
export interface Principal {
  readonly issuer: string;
  readonly subject: string;
  readonly kind: 'person' | 'machine';
  /** Group names, prefixed with the issuer's group_prefix when one is configured. */
  readonly groups: readonly string[];
  /** All verified claims of the token (never the token itself). */
  readonly claims: Readonly<Record<string, unknown>>;
  /** Token expiry, epoch seconds. */
  readonly expiresAt: number;
}

/** The part of a principal that goes into audit events and logs. */
export interface PrincipalRef {
  readonly issuer: string;
  readonly subject: string;
  readonly kind: 'person' | 'machine';
}

export function principalRef(p: Principal): PrincipalRef {
  return { issuer: p.issuer, subject: p.subject, kind: p.kind };
}

export function principalKey(p: PrincipalRef): string {
  return `${p.issuer}\u0000${p.subject}`;
}

/** Turns a token into a Principal, or throws AuthenticationError. */
export interface Authenticator {
  authenticate(token: string): Promise<Principal>;
}
