import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { principalRef } from '../../identity/principal.js';
import type { SessionRegistry } from '../../sessions/registry.js';
import { summarize } from '../../sessions/session.js';
import { sendError } from '../api-auth.js';

type Guard = (req: FastifyRequest, reply: FastifyReply) => Promise<void>;

export function sessionRoutes(app: FastifyInstance, registry: SessionRegistry, guards: { read: Guard; terminate: Guard }): void {
  app.get('/api/v1/sessions', { preHandler: guards.read }, async () => ({ sessions: registry.list().map(summarize) }));

  app.delete<{ Params: { id: string } }>('/api/v1/sessions/:id', { preHandler: guards.terminate }, async (req, reply) => {
    const s = registry.get(req.params.id);
    if (!s) return sendError(reply, 404, 'session_not_found', `no live session ${req.params.id}`);
    const by = req.principal ? principalRef(req.principal) : undefined;
    // The session records session.terminated itself, naming `by`; ending it does not wait for the audit log.
    s.terminate({ code: 'terminated_by_operator', sqlstate: '57P01', message: `the session was ended by ${by?.subject ?? 'an operator'} through the Sluice API`, by });
    return reply.code(202).send({ terminated: s.id });
  });
}
