import type { AuditEvent, AuditEventType } from '../events/types.js';

/** A row of audit_events as SQLite returns it. */
export interface EventRow {
  chain: string;
  seq: number;
  type: AuditEventType;
  time: string;
  session_id: string | null;
  principal_issuer: string | null;
  subject: string | null;
  principal_kind: 'person' | 'machine' | null;
  resource: string | null;
  data: string;
  prev_hash: string;
  hash: string;
}

export const EVENT_COLUMNS = 'chain, seq, type, time, session_id, principal_issuer, subject, principal_kind, resource, data, prev_hash, hash';

/** The event a row holds; `data` is passed in parsed, since a verifier must cope with a row whose data is no longer JSON. */
export function rowToEvent(r: EventRow, data: Record<string, unknown>): AuditEvent {
  return {
    seq: r.seq,
    chain: r.chain,
    type: r.type,
    time: r.time,
    data,
    prevHash: r.prev_hash,
    hash: r.hash,
    ...(r.session_id !== null ? { sessionId: r.session_id } : {}),
    ...(r.principal_issuer !== null && r.subject !== null && r.principal_kind !== null
      ? { principal: { issuer: r.principal_issuer, subject: r.subject, kind: r.principal_kind } }
      : {}),
    ...(r.resource !== null ? { resource: r.resource } : {}),
  };
}
