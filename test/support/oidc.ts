import { memoryAdapter, startProviderHost, type RequestHandler } from './oidc-host.js';

/**
 * A real OpenID provider (oidc-provider 9) in this process, on 127.0.0.1 and
 * a random port, issuing client-credentials access tokens as RS256 JWTs whose
 * `aud` is `audience` (also the resource indicator when it is an absolute URI).
 *
 * Clients (client_secret_basic, secret = `<id>-secret`):
 *   ci-pipeline   groups ["ci", "deployers"]
 *   reporting     groups ["analysts"]
 *   any other id  no groups: every client id exists, so a test can mint a
 *                 token for subject "alice" with clientToken('alice')
 * The token's `sub` is the client id. `clientToken(id, extraClaims)` adds
 * claims (for example `groups`) to one token; they override the client's
 * default groups but never iss/sub/aud/exp.
 */
export interface TestOidcProvider {
  readonly issuer: string;
  readonly audience: string;
  readonly jwksUri: string;
  readonly clients: Readonly<Record<string, { secret: string; groups: string[] }>>;
  /** A fresh access token for the client (default ci-pipeline), `aud` = audience. */
  clientToken(clientId?: string, extraClaims?: Record<string, unknown>): Promise<string>;
  stop(): Promise<void>;
}

const CLIENTS: Record<string, { secret: string; groups: string[] }> = {
  'ci-pipeline': { secret: 'ci-pipeline-secret', groups: ['ci', 'deployers'] },
  reporting: { secret: 'reporting-secret', groups: ['analysts'] },
};

/** Carries per-token extra claims from clientToken to extraTokenClaims without a custom protocol parameter. */
const EXTRA_CLAIMS_HEADER = 'x-test-extra-claims';

const secretOf = (clientId: string): string => CLIENTS[clientId]?.secret ?? `${clientId}-secret`;

function clientMetadata(clientId: string): Record<string, unknown> {
  return {
    client_id: clientId,
    client_secret: secretOf(clientId),
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    token_endpoint_auth_method: 'client_secret_basic',
  };
}

interface ProviderContext {
  get(header: string): string;
  oidc: { client?: { clientId: string } };
}

export async function startOidcProvider(opts: { audience?: string } = {}): Promise<TestOidcProvider> {
  const audience = opts.audience ?? 'urn:sluice:test';
  // Resource indicators must be absolute URIs; a plain audience such as "sluice" gets a URN indicator and stays the aud.
  const resource = URL.parse(audience) ? audience : `urn:sluice-test:${encodeURIComponent(audience)}`;
  const host = await startProviderHost();
  const { issuer, signingJwk } = host;

  // A non-literal specifier: oidc-provider ships no type declarations, and this file types the little it uses.
  const moduleName = 'oidc-provider';
  const { default: Provider } = (await import(moduleName)) as { default: new (issuer: string, config: unknown) => { callback(): RequestHandler } };
  const provider = new Provider(issuer, {
    adapter: memoryAdapter(clientMetadata),
    clients: Object.keys(CLIENTS).map(clientMetadata),
    jwks: { keys: [signingJwk] },
    cookies: { keys: ['test-cookie-key'] },
    ttl: { ClientCredentials: 600 },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => resource,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx: unknown, indicator: string) => {
          if (indicator !== resource) throw new Error(`unknown resource ${indicator}`);
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
  host.handle(provider.callback());

  const tokenEndpoint = `${issuer}/token`;
  return {
    issuer,
    audience,
    jwksUri: `${issuer}/jwks`,
    clients: CLIENTS,
    async clientToken(clientId = 'ci-pipeline', extraClaims) {
      const credentials = `${encodeURIComponent(clientId)}:${encodeURIComponent(secretOf(clientId))}`;
      const headers: Record<string, string> = {
        authorization: `Basic ${Buffer.from(credentials).toString('base64')}`,
        'content-type': 'application/x-www-form-urlencoded',
      };
      if (extraClaims) headers[EXTRA_CLAIMS_HEADER] = Buffer.from(JSON.stringify(extraClaims)).toString('base64url');
      const res = await fetch(tokenEndpoint, {
        method: 'POST',
        headers,
        body: new URLSearchParams({ grant_type: 'client_credentials', resource }),
      });
      const body = (await res.json()) as { access_token?: string; error?: string; error_description?: string };
      if (!res.ok || !body.access_token) throw new Error(`token request failed: HTTP ${res.status} ${body.error ?? ''} ${body.error_description ?? ''}`);
      return body.access_token;
    },
    async stop() {
      await host.close();
    },
  };
}
