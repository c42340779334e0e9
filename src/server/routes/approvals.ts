import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { ApprovalError } from '../../approvals/errors.js';
import type { ApprovalService } from '../../approvals/service.js';
import type { ApprovalKind, ApprovalStatus } from '../../approvals/types.js';
import { GRANTS, type GrantName } from '../../config/schema.js';
import { parseDuration } from '../../config/duration.js';
import { sendError } from '../api-auth.js';

/** Longest long-poll: proxies and load balancers commonly cut idle requests at 60 s. */
export const MAX_WAIT_SECONDS = 60;
const DEFAULT_WAIT_SECONDS = 30;

const STATES = ['pending', 'approved', 'denied', 'expired', 'cancelled', 'used'] as const;

const listQuery = z.strictObject({
  kind: z.enum(['statement', 'access']).optional(),
  state: z.enum(STATES).optional(),
  mine: z.enum(['true', 'false']).optional(),
  limit: z
    .string()
    .regex(/^\d{1,4}$/, { message: 'expected an integer from 1 to 1000' })
    .transform(Number)
    .refine((n) => n >= 1 && n <= 1000, { message: 'expected an integer from 1 to 1000' })
    .optional(),
});
const accessListQuery = listQuery.omit({ kind: true });

const waitQuery = z.strictObject({
  timeout: z
    .string()
    .regex(/^\d{1,6}$/, { message: `expected whole seconds from 0 to ${MAX_WAIT_SECONDS}` })
    .transform(Number)
    .refine((n) => n <= MAX_WAIT_SECONDS, { message: `at most ${MAX_WAIT_SECONDS} seconds; call again to keep waiting` })
    .optional(),
});

// A missing reason is left to the service, which answers reason_missing with what to do.
const decisionBody = z.strictObject({ reason: z.string().max(10_000).default('') });

const accessBody = z.strictObject({
  resource: z.string().min(1).max(200),
  grant: z.enum(GRANTS as [GrantName, ...GrantName[]]),
  duration: z.union([z.number(), z.string().max(40)]),
  reason: z.string().max(10_000).default(''),
});

type Id = { Params: { id: string } };

/** The first problem zod found, naming the key, as a 400 message. */
function describeIssue(error: z.ZodError, input: unknown, where: 'body' | 'query'): string {
  const issue = error.issues[0]!;
  if (issue.code === 'unrecognized_keys') return `${where}: unknown ${issue.keys.length > 1 ? 'keys' : 'key'} ${issue.keys.join(', ')}`;
  const path = issue.path.map(String).join('.');
  // A repeated query parameter arrives as an array; guessing which one was meant could widen a listing.
  if (where === 'query' && Array.isArray((input as Record<string, unknown>)[path])) return `query.${path}: give it once`;
  return `${where}${path ? `.${path}` : ''}: ${issue.message}`;
}

function parse<S extends z.ZodType>(schema: S, raw: unknown, where: 'body' | 'query'): z.output<S> {
  const input = raw ?? (where === 'query' ? {} : undefined);
  const r = schema.safeParse(input);
  if (!r.success) throw new ApprovalError(where === 'body' ? 'body_invalid' : 'query_invalid', 400, describeIssue(r.error, input, where));
  return r.data;
}

function accessOnly(s: ApprovalStatus, id: string): ApprovalStatus {
  if (s.request.kind !== 'access') throw new ApprovalError('approval_not_found', 404, `no access request ${id} that you may see`);
  return s;
}

/**
 * Approval requests over /api/v1: list, read, decide, and long-poll for a
 * decision; and access requests, which are approval requests of kind access
 * that callers create here. Visibility and the right to decide are the
 * service's: the requester and those who may decide see a request, and
 * approvals:read sees every one.
 */
export function approvalRoutes(app: FastifyInstance, approvals: ApprovalService): void {
  app.setErrorHandler((err: Error & { code?: string; statusCode?: number }, _req, reply) => {
    if (err instanceof ApprovalError) return sendError(reply, err.status, err.code, err.message);
    // Fastify's own body parsing errors (bad JSON, wrong content type) are the caller's to fix.
    if (err.code?.startsWith('FST_ERR_CTP_') && err.statusCode && err.statusCode < 500) return sendError(reply, err.statusCode, 'body_invalid', err.message);
    throw err;
  });

  const list = (req: FastifyRequest, q: z.output<typeof listQuery>, kind?: ApprovalKind) => ({
    approvals: approvals.list(req.principal!, { kind: kind ?? q.kind, state: q.state, mine: q.mine === 'true', limit: q.limit }),
  });
  const decide = (decision: 'approve' | 'deny', kind?: ApprovalKind) => async (req: FastifyRequest<Id>) => {
    const body = parse(decisionBody, req.body, 'body');
    if (kind) {
      let seen: ApprovalStatus | undefined;
      try {
        seen = approvals.get(req.params.id, req.principal!);
      } catch (err) {
        // Not visible: decide() refuses it with the same answer the approvals path gives.
        if (!(err instanceof ApprovalError && err.status === 404)) throw err;
      }
      if (seen) accessOnly(seen, req.params.id);
    }
    return approvals.decide(req.params.id, req.principal!, decision, body.reason);
  };

  app.get('/api/v1/approvals', async (req) => list(req, parse(listQuery, req.query, 'query')));
  app.get<Id>('/api/v1/approvals/:id', async (req) => approvals.get(req.params.id, req.principal!));
  app.post<Id>('/api/v1/approvals/:id/approve', decide('approve'));
  app.post<Id>('/api/v1/approvals/:id/deny', decide('deny'));

  app.get<Id>('/api/v1/approvals/:id/wait', async (req, reply: FastifyReply) => {
    const { timeout = DEFAULT_WAIT_SECONDS } = parse(waitQuery, req.query, 'query');
    const current = approvals.get(req.params.id, req.principal!);
    if (current.state !== 'pending' || timeout === 0) return current;
    const stop = new AbortController();
    const timer = setTimeout(() => stop.abort(), timeout * 1000);
    // A client that hangs up stops the wait at once rather than holding a listener until the timeout.
    const hungUp = () => {
      if (!reply.raw.writableFinished) stop.abort();
    };
    reply.raw.once('close', hungUp);
    try {
      const after = await approvals.waitFor(req.params.id, stop.signal);
      return after ?? current;
    } finally {
      clearTimeout(timer);
      reply.raw.off('close', hungUp);
    }
  });

  app.post('/api/v1/access-requests', async (req, reply) => {
    const body = parse(accessBody, req.body, 'body');
    const seconds = typeof body.duration === 'number' ? body.duration : parseDuration(body.duration);
    if (seconds === undefined) throw new ApprovalError('duration_invalid', 400, 'body.duration: expected seconds or a duration such as 30m, 2h or 1d');
    const created = await approvals.requestAccess(req.principal!, { resource: body.resource, grant: body.grant, seconds, reason: body.reason });
    return reply.code(201).send(created);
  });
  app.get('/api/v1/access-requests', async (req) => list(req, parse(accessListQuery, req.query, 'query'), 'access'));
  app.get<Id>('/api/v1/access-requests/:id', async (req) => accessOnly(approvals.get(req.params.id, req.principal!), req.params.id));
  app.post<Id>('/api/v1/access-requests/:id/approve', decide('approve', 'access'));
  app.post<Id>('/api/v1/access-requests/:id/deny', decide('deny', 'access'));
}
