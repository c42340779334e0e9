import type { GrantName } from '../config/schema.js';
import type { Principal, PrincipalRef } from '../identity/principal.js';

/** Why Sluice ends a session; sent to the client as a FATAL error. */
export interface TerminationReason {
  readonly code: string;
  readonly sqlstate: string;
  readonly message: string;
  /** Who ended the session, when a person or machine did (operator termination). */
  readonly by?: PrincipalRef;
}

/** A live session as the rest of Sluice sees it, whatever the protocol. */
export interface Session {
  readonly id: string;
  readonly protocol: 'postgres';
  readonly principal: Principal;
  readonly resource: string;
  readonly grant: GrantName;
  /** Name of the policy that allowed the session. */
  readonly policy: string;
  readonly openedAt: Date;
  /** When Sluice ends the session (max_session_duration, or the end of a time-boxed grant), if bounded. */
  readonly endsAt: Date | undefined;
  readonly clientAddress: string;
  readonly tls: boolean;
  readonly applicationName?: string;
  bytesFromClient: number;
  bytesToClient: number;
  statements: number;
  /**
   * Brings the end of the session forward (never back), for example when a
   * reload tightens max_session_duration. `reason` is what the client is told
   * then; without it, that the session reached its max_session_duration.
   */
  limitEnd(endsAt: Date, reason?: TerminationReason): void;
  /** Ends the session with a FATAL error to the client and closes the backend connection. */
  terminate(reason: TerminationReason): void;
}

export interface SessionSummary {
  readonly id: string;
  readonly protocol: string;
  readonly principal: { issuer: string; subject: string; kind: string; groups: readonly string[] };
  readonly resource: string;
  readonly grant: string;
  readonly policy: string;
  readonly openedAt: string;
  readonly endsAt?: string;
  readonly tokenExpiresAt: string;
  readonly clientAddress: string;
  readonly tls: boolean;
  readonly applicationName?: string;
  readonly bytesFromClient: number;
  readonly bytesToClient: number;
  readonly statements: number;
}

export function summarize(s: Session): SessionSummary {
  return {
    id: s.id,
    protocol: s.protocol,
    principal: { issuer: s.principal.issuer, subject: s.principal.subject, kind: s.principal.kind, groups: s.principal.groups },
    resource: s.resource,
    grant: s.grant,
    policy: s.policy,
    openedAt: s.openedAt.toISOString(),
    endsAt: s.endsAt?.toISOString(),
    tokenExpiresAt: new Date(s.principal.expiresAt * 1000).toISOString(),
    clientAddress: s.clientAddress,
    tls: s.tls,
    applicationName: s.applicationName,
    bytesFromClient: s.bytesFromClient,
    bytesToClient: s.bytesToClient,
    statements: s.statements,
  };
}
