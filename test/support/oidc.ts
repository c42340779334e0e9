import { generateKeyPairSync } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A real OpenID provider (oidc-provider 9) in this process, on 127.0.0.1 and
 * a random port, issuing client-credentials access tokens as RS256 JWTs whose
 * `aud` is the configured resource indicator.
 *
 * Clients (client_secret_basic, secret = `<id>-secret`):
 *   ci-pipeline   groups ["ci", "deployers"]
 *   reporting     groups ["analysts"]
 * `clientToken(id, extraClaims)` adds claims (for example `groups`) to one
 * token; they override the client's defaults but never iss/sub/aud/exp.
 */
export interface TestOidcProvider {
  readonly issuer: string;
  readonly audience: string;
  readonly jwksUri: string;
  readonly clients: Readonly<Record<string, { secret: string; groups: string[] }>>;
  clientToken(clientId?: string, extraClaims?: Record<string, unknown>): Promise<string>;
  stop(): Promise<void>;
}

const CLIENTS: Record<string, { secret: string; groups: string[] }> = {
  'ci-pipeline': { secret: 'ci-pipeline-secret', groups: ['ci', 'deployers'] },
  reporting: { secret: 'reporting-secret', groups: ['analysts'] },
};

/** Carries per-token extra claims from clientToken to extraTokenClaims without a custom protocol parameter. */
const EXTRA_CLAIMS_HEADER = 'x-test-extra-claims';

/** The one RSA key, generated once per test process: RSA keygen is the slowest part of a start. */
let signingJwk: Record<string, unknown> | undefined;

/**
 * Per-provider in-memory storage. oidc-provider has a built-in one too, but
 * it warns on every start; this one is all a test run needs.
 */
function memoryAdapter(): new (model: string) => object {
  const store = new Map<string, { payload: Record<string, unknown>; expiresAt?: number }>();
  const read = (key: string): Record<string, unknown> | undefined => {
    const entry = store.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt !== undefined && entry.expiresAt <= Date.now()) {
      store.delete(key);
      return undefined;
    }
    return entry.payload;
  };
  return class MemoryAdapter {
    constructor(readonly model: string) {}
    async upsert(id: string, payload: Record<string, unknown>, expiresIn?: number) {
      store.set(`${this.model}:${id}`, { payload, expiresAt: expiresIn ? Date.now() + expiresIn * 1000 : undefined });
    }
    async find(id: string) {
      return read(`${this.model}:${id}`);
    }
    async findByUserCode() {
      return undefined;
    }
    async findByUid() {
      return undefined;
    }
    async consume(id: string) {
      const payload = read(`${this.model}:${id}`);
      if (payload) payload.consumed = Math.floor(Date.now() / 1000);
    }
    async destroy(id: string) {
      store.delete(`${this.model}:${id}`);
    }
    async revokeByGrantId(grantId: string) {
      for (const [key, entry] of store) if (entry.payload.grantId === grantId) store.delete(key);
    }
  };
}

interface ProviderContext {
  get(header: string): string;
  oidc: { client?: { clientId: string } };
}

export async function startOidcProvider(opts: { audience?: string } = {}): Promise<TestOidcProvider> {
  const audience = opts.audience ?? 'urn:sluice:test';
  if (!URL.parse(audience)) throw new Error(`audience ${audience} must be an absolute URI (it is the resource indicator)`);
  signingJwk ??= { ...generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' }), use: 'sig', alg: 'RS256', kid: 'test-rs256' };

  let handler: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => {
    res.statusCode = 503;
    res.end();
  };
  const server = createServer((req, res) => handler(req, res));
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const issuer = `http://127.0.0.1:${port}`;

  // A non-literal specifier: oidc-provider ships no type declarations, and this file types the little it uses.
  const moduleName = 'oidc-provider';
  const { default: Provider } = (await import(moduleName)) as { default: new (issuer: string, config: unknown) => { callback(): typeof handler } };
  const provider = new Provider(issuer, {
    adapter: memoryAdapter(),
    clients: Object.entries(CLIENTS).map(([id, c]) => ({
      client_id: id,
      client_secret: c.secret,
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
      token_endpoint_auth_method: 'client_secret_basic',
    })),
    jwks: { keys: [signingJwk] },
    cookies: { keys: ['test-cookie-key'] },
    ttl: { ClientCredentials: 600 },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => audience,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx: unknown, resource: string) => {
          if (resource !== audience) throw new Error(`unknown resource ${resource}`);
          return { scope: '', audience, accessTokenFormat: 'jwt', accessTokenTTL: 600, jwt: { sign: { alg: 'RS256' } } };
        },
      },
    },
    extraTokenClaims: (ctx: ProviderContext) => {
      const clientId = ctx.oidc.client?.clientId;
      const header = ctx.get(EXTRA_CLAIMS_HEADER);
      const extra = header ? (JSON.parse(Buffer.from(header, 'base64url').toString('utf8')) as Record<string, unknown>) : {};
      return { groups: clientId ? CLIENTS[clientId]?.groups : undefined, ...extra };
    },
  });
  handler = provider.callback();

  const tokenEndpoint = `${issuer}/token`;
  return {
    issuer,
    audience,
    jwksUri: `${issuer}/jwks`,
    clients: CLIENTS,
    async clientToken(clientId = 'ci-pipeline', extraClaims) {
      const client = CLIENTS[clientId];
      if (!client) throw new Error(`unknown test client ${clientId}; use one of ${Object.keys(CLIENTS).join(', ')}`);
      const headers: Record<string, string> = {
        authorization: `Basic ${Buffer.from(`${clientId}:${client.secret}`).toString('base64')}`,
        'content-type': 'application/x-www-form-urlencoded',
      };
      if (extraClaims) headers[EXTRA_CLAIMS_HEADER] = Buffer.from(JSON.stringify(extraClaims)).toString('base64url');
      const res = await fetch(tokenEndpoint, {
        method: 'POST',
        headers,
        body: new URLSearchParams({ grant_type: 'client_credentials', resource: audience }),
      });
      const body = (await res.json()) as { access_token?: string; error?: string; error_description?: string };
      if (!res.ok || !body.access_token) throw new Error(`token request failed: HTTP ${res.status} ${body.error ?? ''} ${body.error_description ?? ''}`);
      return body.access_token;
    },
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
