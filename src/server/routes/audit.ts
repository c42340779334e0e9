import { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { CSV_HEADER, toCsvRow, toJsonLine } from '../../audit/export.js';
import type { AuditEvent } from '../../events/types.js';
import type { AuditStore } from '../../audit/store.js';
import { SluiceError } from '../../errors.js';
import { AUDIT_EVENT_TYPES, type AuditEventType, type AuditQuery } from '../../events/types.js';
import { sendError } from '../api-auth.js';


const PARAMS = ['after_seq', 'before_seq', 'type', 'session_id', 'subject', 'resource', 'since', 'until', 'q', 'limit', 'order'] as const;
type AuditQueryString = { [K in (typeof PARAMS)[number]]?: string };

/** Free text is matched with LIKE over every event; a bound keeps one request from costing too much. */
export const MAX_TEXT_CHARS = 1000;
const MAX_LIMIT = 1000;

/** Parses the query string; returns an error message naming the bad parameter. */
export function parseAuditQuery(raw: Readonly<Record<string, unknown>>): AuditQuery | string {
  const qs: AuditQueryString = {};
  for (const name of PARAMS) {
    const v = raw[name];
    if (v === undefined) continue;
    // A repeated parameter arrives as an array; guessing which one was meant could widen a search.
    if (typeof v !== 'string') return `${name}: give it once (use a comma-separated list for several types)`;
    qs[name] = v;
  }
  const int = (name: string, v: string | undefined): number | undefined | string => {
    if (v === undefined) return undefined;
    return /^\d{1,15}$/.test(v) ? Number(v) : `${name}: expected a non-negative integer`;
  };
  const afterSeq = int('after_seq', qs.after_seq);
  const beforeSeq = int('before_seq', qs.before_seq);
  const limit = int('limit', qs.limit);
  for (const v of [afterSeq, beforeSeq, limit]) if (typeof v === 'string') return v;
  if (limit === 0) return `limit: expected 1 to ${MAX_LIMIT}`;
  if (qs.q !== undefined && qs.q.length > MAX_TEXT_CHARS) return `q: at most ${MAX_TEXT_CHARS} characters`;
  const types = qs.type ? qs.type.split(',') : undefined;
  const bad = types?.find((t) => !(AUDIT_EVENT_TYPES as readonly string[]).includes(t));
  if (bad) return `type: unknown event type ${bad}; one of ${AUDIT_EVENT_TYPES.join(', ')}`;
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
    limit: Math.min((limit as number | undefined) ?? 100, MAX_LIMIT),
    order: qs.order as 'asc' | 'desc' | undefined,
  };
}

export function auditRoutes(app: FastifyInstance, store: AuditStore): void {
  app.get<{ Querystring: Record<string, unknown> }>('/api/v1/audit/events', async (req, reply) => {
    const q = parseAuditQuery(req.query);
    if (typeof q === 'string') return sendError(reply, 400, 'query_invalid', q);
    let events;
    try {
      events = store.query(q);
    } catch (err) {
      if (err instanceof SluiceError && err.code === 'audit_query_invalid') return sendError(reply, 400, 'query_invalid', err.message);
      throw err;
    }
    const last = events[events.length - 1];
    return { events, next: events.length === q.limit && last ? { [q.order === 'desc' ? 'before_seq' : 'after_seq']: last.seq } : null };
  });
  app.get<{ Querystring: Record<string, unknown> }>('/api/v1/audit/export', async (req, reply) => {
    const format = req.query.format ?? 'jsonl';
    if (format !== 'jsonl' && format !== 'csv') return sendError(reply, 400, 'query_invalid', 'format: expected jsonl or csv');
    if (req.query.limit !== undefined) {
      return sendError(reply, 400, 'query_invalid', 'limit: an export holds every matching event; narrow it with filters, after_seq or before_seq');
    }
    const q = parseAuditQuery(req.query);
    if (typeof q === 'string') return sendError(reply, 400, 'query_invalid', q);
    const pages = exportPages(store, q);
    let first: IteratorResult<AuditEvent[]>;
    try {
      first = pages.next();
    } catch (err) {
      if (err instanceof SluiceError && err.code === 'audit_query_invalid') return sendError(reply, 400, 'query_invalid', err.message);
      throw err;
    }
    const row = format === 'csv' ? toCsvRow : toJsonLine;
    function* body(): Generator<string> {
      if (format === 'csv') yield CSV_HEADER;
      for (let page = first; !page.done; page = pages.next()) yield page.value.map(row).join('');
    }
    const stamp = new Date().toISOString().replace(/[-:]|\.\d+/g, '');
    reply
      .header('content-type', format === 'csv' ? 'text/csv; charset=utf-8; header=present' : 'application/x-ndjson; charset=utf-8')
      .header('content-disposition', `attachment; filename="sluice-audit-${stamp}.${format}"`)
      .header('x-content-type-options', 'nosniff')
      .header('cache-control', 'no-store');
    // Pulled one page at a time as the client reads, so memory stays at about one page whatever the export's size.
    return reply.send(Readable.from(body(), { objectMode: false }));
  });
}

/** Rows per store query while exporting. */
export const EXPORT_PAGE = 1000;

/**
 * Every event matching `q`, page by page, keyset by seq in `q.order`.
 * Events written after the export began are left out, so a busy log cannot
 * keep an export running forever.
 */
export function* exportPages(store: AuditStore, q: AuditQuery): Generator<AuditEvent[]> {
  const end = store.lastSeq() + 1;
  let after = q.afterSeq;
  let before = Math.min(q.beforeSeq ?? end, end);
  for (;;) {
    const page = store.query({ ...q, afterSeq: after, beforeSeq: before, limit: EXPORT_PAGE });
    if (page.length) yield page;
    if (page.length < EXPORT_PAGE) return;
    const last = page[page.length - 1].seq;
    if (q.order === 'desc') before = last;
    else after = last;
  }
}
