import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Permission } from '../config/schema.js';
import { AuthenticationError } from '../errors.js';
import type { Principal } from '../identity/principal.js';
import { decidePermission } from '../policy/index.js';
import type { GatewayState } from '../runtime/state.js';

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal;
  }
}

export function sendError(reply: FastifyReply, status: number, code: string, message: string): FastifyReply {
  return reply.code(status).send({ error: { code, message } });
}

/**
 * Bearer-token authentication for /api/v1: the same tokens and verifier as
 * the PostgreSQL listener, so the API never has its own weaker identity.
 */
export function bearerAuth(state: () => GatewayState) {
  return async (req: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const header = req.headers.authorization;
    const m = header ? /^Bearer ([^\s]+)$/i.exec(header) : null;
    if (!m) {
      reply.header('www-authenticate', 'Bearer');
      await sendError(reply, 401, 'token_missing', 'send an identity token as "Authorization: Bearer <token>"');
      return;
    }
    try {
      req.principal = await state().authenticator.authenticate(m[1]);
    } catch (err) {
      const code = err instanceof AuthenticationError ? err.code : 'authentication_failed';
      const message = err instanceof AuthenticationError ? err.message : 'the token could not be verified';
      reply.header('www-authenticate', 'Bearer error="invalid_token"');
      await sendError(reply, 401, code, `authentication failed: ${message}`);
    }
  };
}

/** Route guard: the policy must grant `permission` to the caller. */
export function requirePermission(state: () => GatewayState, permission: Permission) {
  return async (req: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const p = req.principal;
    if (!p) {
      await sendError(reply, 401, 'token_missing', 'authentication required');
      return;
    }
    const d = decidePermission(state().config.policies, p, permission);
    if (!d.allowed) await sendError(reply, 403, 'permission_denied', d.message);
  };
}
