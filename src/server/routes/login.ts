import type { FastifyInstance } from 'fastify';
import type { GatewayState } from '../../runtime/state.js';

/** What `sluice login` needs to sign in at one issuer; all of it is public (it is in every token or in the IdP's discovery). */
export interface LoginIssuer {
  readonly name: string;
  readonly issuer: string;
  readonly client_id: string;
  readonly scopes: readonly string[];
  /** The aud Sluice requires, so the CLI refuses, before caching, a token Sluice would refuse. */
  readonly audience: string;
}

/**
 * GET /api/v1/login, unauthenticated: the issuers people can log in with.
 * It is how a CLI without a token learns where to get one, so it sits
 * outside the bearer-auth hook and publishes nothing secret.
 */
export function loginRoutes(app: FastifyInstance, state: () => GatewayState): void {
  app.get('/api/v1/login', async (): Promise<{ issuers: LoginIssuer[] }> => ({
    issuers: state().config.identity.issuers.flatMap((i) =>
      i.login ? [{ name: i.name, issuer: i.issuer, client_id: i.login.client_id, scopes: i.login.scopes, audience: i.audience }] : [],
    ),
  }));
}
