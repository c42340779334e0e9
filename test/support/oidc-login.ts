import type { IncomingMessage, ServerResponse } from 'node:http';
import { memoryAdapter, startProviderHost } from './oidc-host.js';

/**
 * A real OpenID provider (oidc-provider 9) for `sluice login`: the
 * authorization code flow with PKCE and the device flow, for public native
 * clients (no secret, loopback redirect on any port). There is no login
 * page: the interaction endpoint signs in `account` and grants every asked
 * scope, so `signIn(url)` plays the person in the browser with plain fetch.
 *
 * Clients: `sluice-cli` and `other-cli` (a second app, for tokens meant for
 * someone else). ID tokens carry the account's `groups` (scope `groups`) and
 * are RS256 JWTs with aud = client id.
 */
export interface LoginOidcProvider {
  readonly issuer: string;
  readonly clientId: string;
  /** Who the next sign-in is. */
  account: { subject: string; groups: string[] };
  /** How many device-flow polls still get `slow_down` instead of `authorization_pending`. */
  slowDowns: number;
  /**
   * Opens `url` as a browser would (cookies, redirects), submits the
   * provider's device-code forms, and stops at the first response that is not the
   * provider's own: the CLI's loopback callback, or the provider's final page.
   */
  signIn(url: string): Promise<{ url: string; status: number; body: string }>;
  stop(): Promise<void>;
}

const CLIENT_IDS = ['sluice-cli', 'other-cli'];

function publicClient(clientId: string): Record<string, unknown> {
  return {
    client_id: clientId,
    application_type: 'native',
    token_endpoint_auth_method: 'none',
    grant_types: ['authorization_code', 'urn:ietf:params:oauth:grant-type:device_code'],
    response_types: ['code'],
    redirect_uris: ['http://127.0.0.1/callback'],
  };
}

interface Grant {
  addOIDCScope(scope: string): void;
  addOIDCClaims(claims: string[]): void;
  addResourceScope(indicator: string, scope: string): void;
  save(): Promise<string>;
}
interface Provider {
  callback(): (req: IncomingMessage, res: ServerResponse) => void;
  use(fn: (ctx: KoaContext, next: () => Promise<void>) => Promise<void>): void;
  interactionDetails(req: IncomingMessage, res: ServerResponse): Promise<{
    prompt: { name: string; details: Record<string, unknown> };
    params: Record<string, unknown>;
    session?: { accountId: string };
    grantId?: string;
  }>;
  interactionFinished(req: IncomingMessage, res: ServerResponse, result: unknown, opts: { mergeWithLastSubmission: boolean }): Promise<void>;
  Grant: { new (init: { accountId: string; clientId: string }): Grant; find(id: string): Promise<Grant | undefined> };
}
interface KoaContext {
  path: string;
  method: string;
  status: number;
  body: unknown;
}

const page = (body: string): string => `<!DOCTYPE html><html><head><title>Test IdP</title></head><body>${body}</body></html>`;

export async function startLoginOidcProvider(): Promise<LoginOidcProvider> {
  const host = await startProviderHost();
  const { issuer, signingJwk } = host;

  const state: Pick<LoginOidcProvider, 'account' | 'slowDowns'> = { account: { subject: 'alice', groups: [] }, slowDowns: 0 };

  // A non-literal specifier: oidc-provider ships no type declarations, and this file types the little it uses.
  const moduleName = 'oidc-provider';
  const { default: ProviderClass } = (await import(moduleName)) as { default: new (issuer: string, config: unknown) => Provider };
  const provider = new ProviderClass(issuer, {
    adapter: memoryAdapter(),
    clients: CLIENT_IDS.map(publicClient),
    jwks: { keys: [signingJwk] },
    cookies: { keys: ['test-cookie-key'] },
    claims: { openid: ['sub'], groups: ['groups'] },
    // Sluice authenticates the ID token, so the scope's claims belong in it, not only at userinfo.
    conformIdTokenClaims: false,
    findAccount: (_ctx: unknown, sub: string) => ({
      accountId: sub,
      claims: () => ({ sub, groups: sub === state.account.subject ? state.account.groups : [] }),
    }),
    interactions: { url: (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}` },
    ttl: { AccessToken: 600, AuthorizationCode: 60, DeviceCode: 600, IdToken: 600, Interaction: 600, Session: 600, Grant: 600 },
    renderError: (ctx: KoaContext, out: { error: string; error_description?: string }) => {
      ctx.body = page(`<p class="error">${out.error}: ${out.error_description ?? ''}</p>`);
    },
    features: {
      devInteractions: { enabled: false },
      deviceFlow: {
        enabled: true,
        userCodeInputSource: (ctx: KoaContext, form: string) => {
          ctx.body = page(form);
        },
        userCodeConfirmSource: (ctx: KoaContext, form: string) => {
          ctx.body = page(form);
        },
        successSource: (ctx: KoaContext) => {
          ctx.body = page('<p>Signed in; return to your terminal.</p>');
        },
      },
    },
  });

  // RFC 8628 lets the server ask a polling client to back off; oidc-provider never does, so the fixture does it on request.
  provider.use(async (ctx, next) => {
    await next();
    const body = ctx.body as { error?: string } | undefined;
    if (ctx.path === '/token' && body?.error === 'authorization_pending' && state.slowDowns > 0) {
      state.slowDowns -= 1;
      ctx.body = { error: 'slow_down', error_description: 'poll less often' };
    }
  });

  const interact = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const details = await provider.interactionDetails(req, res);
    if (details.prompt.name === 'login') {
      await provider.interactionFinished(req, res, { login: { accountId: state.account.subject } }, { mergeWithLastSubmission: false });
      return;
    }
    const clientId = String(details.params.client_id);
    const grant = details.grantId ? await provider.Grant.find(details.grantId) : new provider.Grant({ accountId: details.session!.accountId, clientId });
    const missing = details.prompt.details as { missingOIDCScope?: string[]; missingOIDCClaims?: string[]; missingResourceScopes?: Record<string, string[]> };
    if (missing.missingOIDCScope) grant!.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant!.addOIDCClaims(missing.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) grant!.addResourceScope(indicator, scopes.join(' '));
    const grantId = await grant!.save();
    await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
  };

  const oidc = provider.callback();
  host.handle((req, res) => {
    if (req.url?.startsWith('/interaction/')) {
      interact(req, res).catch((err: Error) => {
        res.statusCode = 500;
        res.end(`interaction failed: ${err.message}`);
      });
      return;
    }
    oidc(req, res);
  });

  const signIn = async (start: string): Promise<{ url: string; status: number; body: string }> => {
    const jar = new Map<string, string>();
    let url = start;
    let init: RequestInit = { method: 'GET' };
    for (let hop = 0; hop < 20; hop++) {
      const cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
      const res = await fetch(url, { ...init, redirect: 'manual', headers: { ...(init.headers as Record<string, string>), ...(cookie ? { cookie } : {}) } });
      for (const c of res.headers.getSetCookie()) {
        const [pair, ...attrs] = c.split(';');
        const eq = pair.indexOf('=');
        const name = pair.slice(0, eq).trim();
        const expired = attrs.some((a) => /^\s*expires=/i.test(a) && Date.parse(a.split('=')[1]) < Date.now());
        if (expired) jar.delete(name);
        else jar.set(name, pair.slice(eq + 1).trim());
      }
      const body = await res.text();
      if (!url.startsWith(issuer + '/')) return { url, status: res.status, body };
      const location = res.headers.get('location');
      if (res.status >= 300 && res.status < 400 && location) {
        url = new URL(location, url).href;
        init = { method: 'GET' };
        continue;
      }
      // The device pages are forms to post: the provider's self-submitting one, then the code confirmation.
      const form = /<form[^>]*method="post"[^>]*action="([^"]+)"[^>]*>([\s\S]*?)<\/form>/.exec(body);
      if (!form) return { url, status: res.status, body };
      const fields = new URLSearchParams();
      for (const m of form[2].matchAll(/<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"/g)) fields.set(m[1], m[2]);
      url = new URL(form[1], url).href;
      init = { method: 'POST', body: fields.toString(), headers: { 'content-type': 'application/x-www-form-urlencoded' } };
    }
    throw new Error(`sign-in did not finish within 20 requests; last at ${url}`);
  };

  return {
    issuer,
    clientId: CLIENT_IDS[0],
    get account() {
      return state.account;
    },
    set account(a) {
      state.account = a;
    },
    get slowDowns() {
      return state.slowDowns;
    },
    set slowDowns(n) {
      state.slowDowns = n;
    },
    signIn,
    async stop() {
      await host.close();
    },
  };
}
