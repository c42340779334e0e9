import type { PrincipalRef } from '../identity/principal.js';

/** Every event type, in lifecycle order; the API validates filters against this list. */
export const AUDIT_EVENT_TYPES = [
  'session.opened',
  'session.closed',
  'session.refused',
  'session.terminated',
  'statement.started',
  'statement.completed',
  'statement.denied',
  'approval.requested',
  'approval.decided',
  'approval.used',
  'approval.cancelled',
  'approval.expired',
  'config.loaded',
  'config.reloaded',
  'config.rejected',
] as const;

export type AuditEventType = (typeof AUDIT_EVENT_TYPES)[number];

/** What a producer hands to the event pipeline. */
export interface AuditEventInput {
  readonly type: AuditEventType;
  /** ISO-8601 time the event happened. */
  readonly time: string;
  readonly sessionId?: string;
  readonly principal?: PrincipalRef;
  readonly resource?: string;
  /** Event-specific fields; never secrets or tokens. */
  readonly data: Readonly<Record<string, unknown>>;
}

/** An event as stored: sequence number and hash chain added by the store. */
export interface AuditEvent extends AuditEventInput {
  readonly seq: number;
  /** Chain this event belongs to (one per writer instance). */
  readonly chain: string;
  readonly prevHash: string;
  readonly hash: string;
}

export interface AuditQuery {
  readonly afterSeq?: number;
  readonly beforeSeq?: number;
  readonly types?: readonly AuditEventType[];
  readonly sessionId?: string;
  readonly subject?: string;
  readonly resource?: string;
  readonly since?: string;
  readonly until?: string;
  /** Free-text match inside event data (statement text, reasons). */
  readonly text?: string;
  readonly limit?: number;
  readonly order?: 'asc' | 'desc';
}
