import type { GrantName } from '../../config/schema.js';
import type { ApprovalKind, ApprovalState, ApprovalStatus } from '../types.js';

export type NotificationType = 'approval.requested' | 'approval.decided';

/**
 * The JSON body of a notification. It is built field by field from an
 * ApprovalStatus, so a field added to the status later never reaches a
 * receiver unless it is named here (the statement hash, the session id and
 * the requester's groups stay inside Sluice).
 */
export interface ApprovalNotification {
  readonly type: NotificationType;
  readonly id: string;
  readonly kind: ApprovalKind;
  readonly state: ApprovalState;
  readonly rule: string;
  readonly resource: string;
  readonly requester: {
    readonly issuer: string;
    readonly subject: string;
    readonly kind: 'person' | 'machine';
    readonly ci?: Readonly<Record<string, string>>;
  };
  readonly justification?: string;
  readonly link: string;
  readonly createdAt: string;
  readonly expiresAt: string;
  /** Distinct approvals needed. */
  readonly required: number;
  /** Approved: until when a fail-fast re-run may use it, or when the access grant ends. */
  readonly validUntil?: string;
  readonly statement?: {
    /** Cut at MAX_STATEMENT_CHARS (then `textTruncated`); the whole text is at the link. */
    readonly text: string;
    readonly textTruncated?: true;
    readonly params?: readonly (string | null)[];
    readonly rows?: number;
    readonly mode: 'wait' | 'fail_fast';
    readonly facts: { readonly kinds: readonly string[]; readonly tables: readonly string[]; readonly functions: readonly string[]; readonly opaque: boolean };
    readonly grant: GrantName;
  };
  readonly access?: { readonly grant: GrantName; readonly duration: number };
  readonly decisions: readonly {
    readonly decision: 'approve' | 'deny';
    readonly by: { readonly issuer: string; readonly subject: string };
    readonly reason: string;
    readonly time: string;
  }[];
  /** When the notification was built (ISO 8601). */
  readonly time: string;
}

/** A statement of megabytes (a bulk INSERT) would make every delivery that large; receivers follow the link for the rest. */
export const MAX_STATEMENT_CHARS = 64 * 1024;

export function notificationPayload(type: NotificationType, status: ApprovalStatus, time: Date): ApprovalNotification {
  const r = status.request;
  const s = r.statement;
  return {
    type,
    id: r.id,
    kind: r.kind,
    state: status.state,
    rule: r.rule,
    resource: r.resource,
    requester: {
      issuer: r.requester.issuer,
      subject: r.requester.subject,
      kind: r.requester.kind,
      ...(r.requester.ci ? { ci: { ...r.requester.ci } } : {}),
    },
    ...(r.justification !== undefined ? { justification: r.justification } : {}),
    link: r.link,
    createdAt: r.createdAt,
    expiresAt: r.expiresAt,
    required: r.required,
    ...(status.validUntil !== undefined ? { validUntil: status.validUntil } : {}),
    ...(s
      ? {
          statement: {
            text: s.text.length > MAX_STATEMENT_CHARS ? s.text.slice(0, MAX_STATEMENT_CHARS) : s.text,
            ...(s.text.length > MAX_STATEMENT_CHARS ? { textTruncated: true as const } : {}),
            ...(s.params ? { params: [...s.params] } : {}),
            ...(s.rows !== undefined ? { rows: s.rows } : {}),
            mode: s.mode,
            facts: { kinds: [...s.facts.kinds], tables: [...s.facts.tables], functions: [...s.facts.functions], opaque: s.facts.opaque },
            grant: s.grant,
          },
        }
      : {}),
    ...(r.access ? { access: { grant: r.access.grant, duration: r.access.duration } } : {}),
    decisions: status.decisions.map((d) => ({
      decision: d.decision,
      by: { issuer: d.by.issuer, subject: d.by.subject },
      reason: d.reason,
      time: d.time,
    })),
    time: time.toISOString(),
  };
}
