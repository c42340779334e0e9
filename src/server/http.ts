import Fastify, { type FastifyInstance } from 'fastify';
import type { AuditStore } from '../audit/store.js';
import type { JWK } from 'jose';
import type { Logger } from '../observability/log.js';
import type { GatewayMetrics } from '../observability/metrics.js';
import type { GatewayState } from '../runtime/state.js';
import type { SessionRegistry } from '../sessions/registry.js';
import { bearerAuth, requirePermission, sendError } from './api-auth.js';
import { approvalRoutes } from './routes/approvals.js';
import { auditRoutes } from './routes/audit.js';
import { loginRoutes } from './routes/login.js';
import { sessionRoutes } from './routes/sessions.js';
import type { ApprovalService } from '../approvals/service.js';

export interface HttpDeps {
  readonly state: () => GatewayState;
  readonly store: AuditStore;
  readonly registry: SessionRegistry;
  readonly metrics: GatewayMetrics;
  readonly jwks: () => { keys: JWK[] };
  /** Reasons the gateway is not ready; empty when ready. */
  readonly notReady: () => string[];
  readonly approvals: ApprovalService;
  readonly https?: { cert: string; key: string };
  /** Where unexpected errors go; the client is only told to look here. */
  readonly log?: Logger;
}

/** The HTTP listener: health, metrics, JWKS, and the /api/v1 API. */
export function createHttpServer(deps: HttpDeps): FastifyInstance {
  const app = Fastify({ logger: false, https: deps.https ?? null, bodyLimit: 1024 * 1024 }) as unknown as FastifyInstance;
  app.setErrorHandler((err: { statusCode?: number; code?: string; message: string }, req, reply) => {
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    if (status === 500) deps.log?.error({ code: err.code, err: err.message, method: req.method, path: req.url.split('?')[0] }, 'HTTP API request failed');
    return sendError(reply, status, err.code ?? 'internal_error', status === 500 ? 'internal error; see the Sluice log' : err.message);
  });
  app.setNotFoundHandler((req, reply) => sendError(reply, 404, 'not_found', `no route ${req.method} ${req.url.split('?')[0]}`));

  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_req, reply) => {
    const reasons = deps.notReady();
    return reply.code(reasons.length ? 503 : 200).send({ status: reasons.length ? 'not ready' : 'ready', reasons });
  });
  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', deps.metrics.registry.contentType);
    return deps.metrics.registry.metrics();
  });
  app.get('/.well-known/jwks.json', async () => deps.jwks());

  loginRoutes(app, deps.state);
  const auth = bearerAuth(deps.state);
  app.register(async (api) => {
    api.addHook('preHandler', auth);
    api.get('/api/v1/whoami', async (req) => {
      const p = req.principal!;
      return { issuer: p.issuer, subject: p.subject, kind: p.kind, groups: p.groups, expiresAt: new Date(p.expiresAt * 1000).toISOString() };
    });
    api.register(async (audit) => {
      audit.addHook('preHandler', requirePermission(deps.state, 'audit:read'));
      auditRoutes(audit, deps.store);
    });
    sessionRoutes(api, deps.registry, {
      read: requirePermission(deps.state, 'sessions:read'),
      terminate: requirePermission(deps.state, 'sessions:terminate'),
    });
    api.register(async (approvals) => approvalRoutes(approvals, deps.approvals));
  });
  return app;
}
