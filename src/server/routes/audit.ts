import type { FastifyInstance } from 'fastify';
import type { AuditStore } from '../../audit/store.js';
import type { AuditEventType, AuditQuery } from '../../events/types.js';
import { sendError } from '../api-auth.js';

const TYPES: readonly AuditEventType[] = [
  'session.opened',
  'session.closed',
  'session.refused',
  'session.terminated',
  'statement.started',
  'statement.completed',
  'config.reloaded',
  'config.rejected',
];

interface AuditQueryString {
  after_seq?: string;
  before_seq?: string;
  type?: string;
  session_id?: string;
  subject?: string;
  resource?: string;
  since?: string;
  until?: string;
  q?: string;
  limit?: string;
  order?: string;
}

/** Parses the query string; returns an error message naming the bad parameter. */
export function parseAuditQuery(qs: AuditQueryString): AuditQuery | string {
  const int = (name: string, v: string | undefined): number | undefined | string => {
    if (v === undefined) return undefined;
    return /^\d{1,15}$/.test(v) ? Number(v) : `${name}: expected a non-negative integer`;
  };
  const afterSeq = int('after_seq', qs.after_seq);
  const beforeSeq = int('before_seq', qs.before_seq);
  const limit = int('limit', qs.limit);
  for (const v of [afterSeq, beforeSeq, limit]) if (typeof v === 'string') return v;
  const types = qs.type ? qs.type.split(',') : undefined;
  const bad = types?.find((t) => !(TYPES as readonly string[]).includes(t));
  if (bad) return `type: unknown event type ${bad}; one of ${TYPES.join(', ')}`;
  for (const [name, v] of [['since', qs.since], ['until', qs.until]] as const) {
    if (v !== undefined && Number.isNaN(Date.parse(v))) return `${name}: expected an ISO-8601 time`;
  }
  if (qs.order !== undefined && qs.order !== 'asc' && qs.order !== 'desc') return 'order: expected asc or desc';
  return {
    afterSeq: afterSeq as number | undefined,
    beforeSeq: beforeSeq as number | undefined,
    types: types as AuditEventType[] | undefined,
    sessionId: qs.session_id,
    subject: qs.subject,
    resource: qs.resource,
    since: qs.since ? new Date(qs.since).toISOString() : undefined,
    until: qs.until ? new Date(qs.until).toISOString() : undefined,
    text: qs.q,
    limit: Math.min((limit as number | undefined) ?? 100, 1000),
    order: qs.order as 'asc' | 'desc' | undefined,
  };
}

export function auditRoutes(app: FastifyInstance, store: AuditStore): void {
  app.get<{ Querystring: AuditQueryString }>('/api/v1/audit/events', async (req, reply) => {
    const q = parseAuditQuery(req.query);
    if (typeof q === 'string') return sendError(reply, 400, 'query_invalid', q);
    const events = store.query(q);
    const last = events[events.length - 1];
    return { events, next: events.length === q.limit && last ? { [q.order === 'desc' ? 'before_seq' : 'after_seq']: last.seq } : null };
  });
}
