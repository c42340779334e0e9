import type { GrantName } from '../config/schema.js';
import type { PrincipalRef } from '../identity/principal.js';

/** A held statement, or a request for a time-boxed grant. */
export type ApprovalKind = 'statement' | 'access';

/**
 * pending: waiting for decisions. approved: enough distinct approvals and no
 * denial. denied: one approver said no. expired: nobody decided in time, or
 * an approval was not used in time. cancelled: the waiting session ended.
 * used: a statement approval released its statement (single use).
 */
export type ApprovalState = 'pending' | 'approved' | 'denied' | 'expired' | 'cancelled' | 'used';

/** The requester as recorded: who, and, for CI identities, which pipeline. */
export interface Requester extends PrincipalRef {
  readonly groups: readonly string[];
  /** CI context from the token's claims (repository, workflow, ref, run, build), when present. */
  readonly ci?: Readonly<Record<string, string>>;
}

export interface StatementDetails {
  readonly sessionId: string;
  /** The session's grant: an approval never releases more than it allows. */
  readonly grant: GrantName;
  /** The statement exactly as the client sent it (password literals redacted). */
  readonly text: string;
  /** Bind parameters as recorded in statement.started (text, truncated; binary as hex). */
  readonly params?: readonly (string | null)[];
  /** sha256 over requester, resource, text and parameters: what a fail-fast re-run must match. */
  readonly hash: string;
  readonly mode: 'wait' | 'fail_fast';
  /** What the classifier found: kinds, tables, functions, opaque. */
  readonly facts: { readonly kinds: readonly string[]; readonly tables: readonly string[]; readonly functions: readonly string[]; readonly opaque: boolean };
  /** Rows the statement changed when Sluice ran it in a savepoint (rows_over rules). */
  readonly rows?: number;
  /** How long an approval may be used (fail_fast), seconds. */
  readonly approvalTtl: number;
}

export interface AccessDetails {
  readonly grant: GrantName;
  /** Seconds the grant lasts from its approval. */
  readonly duration: number;
}

export interface ApprovalRequest {
  /** `apr_` and 20 random base32 characters. */
  readonly id: string;
  readonly kind: ApprovalKind;
  /** The policy whose approval/access rule applies. */
  readonly rule: string;
  readonly requester: Requester;
  readonly resource: string;
  readonly createdAt: string;
  /** After this, an undecided request is expired. */
  readonly expiresAt: string;
  readonly required: number;
  readonly justification?: string;
  readonly link: string;
  readonly statement?: StatementDetails;
  readonly access?: AccessDetails;
}

export interface ApprovalDecision {
  readonly requestId: string;
  readonly decision: 'approve' | 'deny';
  readonly by: PrincipalRef;
  readonly reason: string;
  readonly time: string;
}

/** A request with its decisions and the state they add up to. */
export interface ApprovalStatus {
  readonly request: ApprovalRequest;
  readonly state: ApprovalState;
  readonly decisions: readonly ApprovalDecision[];
  /** When it became approved or denied. */
  readonly decidedAt?: string;
  /** Approved statement: last moment a re-run may use it. Approved access: when the grant ends. */
  readonly validUntil?: string;
  readonly usedAt?: string;
}
