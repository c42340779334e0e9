import { spawn } from 'node:child_process';
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { accessSync, constants } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { delimiter, join } from 'node:path';
import type { Command } from 'commander';
import { createRemoteJWKSet, errors, jwtVerify, type JWTPayload } from 'jose';
import { loadConfigFile } from '../../config/load.js';
import { SluiceError } from '../../errors.js';
import { fetchJson, FetchFailure } from '../../identity/fetch-json.js';
import { publicUrl } from '../../runtime/build-state.js';
import type { LoginIssuer } from '../../server/routes/login.js';
import { findConfigFile } from '../config-file.js';
import { normalizeApiUrl, TokenCache, type CachedToken } from '../token-cache.js';

/** How the person is told where to sign in; the CLI writes to stderr, tests drive the flow from here. */
export interface LoginPrompt {
  authorize(url: string): void;
  device(d: { verificationUri: string; verificationUriComplete?: string; userCode: string; expiresInSeconds: number }): void;
}

export interface LoginOptions {
  /** Sluice API base URL. */
  readonly url: string;
  /** Issuer name from /api/v1/login; needed when Sluice offers several. */
  readonly issuer?: string;
  /** Device authorization grant (RFC 8628) instead of a browser on this machine. */
  readonly device?: boolean;
  /** Open the sign-in URL with the desktop's opener (default true). */
  readonly browser?: boolean;
  /** Loopback port for the redirect; 0 or absent picks a free one. */
  readonly port?: number;
  readonly cache?: TokenCache;
  readonly prompt?: LoginPrompt;
  /** How long to wait for the browser sign-in; default 300 s. */
  readonly timeoutSeconds?: number;
  /** Waits between device-flow polls; tests pass one that does not sleep. */
  readonly sleep?: (seconds: number) => Promise<void>;
}

export interface LoginResult {
  readonly apiUrl: string;
  readonly issuer: LoginIssuer;
  readonly entry: CachedToken;
}

interface Discovery {
  readonly authorization_endpoint: string;
  readonly token_endpoint: string;
  readonly jwks_uri: string;
  readonly device_authorization_endpoint?: string;
}

const HTTP_TIMEOUT_SECONDS = 10;
const CLOCK_TOLERANCE_SECONDS = 30;
const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
const ASYMMETRIC = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];

const sleepSeconds = (s: number): Promise<void> => new Promise((r) => setTimeout(r, s * 1000));
const random = (): string => randomBytes(32).toString('base64url');

/**
 * Signs the person in at one of the issuers Sluice trusts and caches the ID
 * token for this API URL. The CLI keeps the ID token, not the access token:
 * it is a signed JWT at every OpenID provider (access tokens are opaque at
 * many), it carries the nonce that binds it to this login, and its aud is
 * the login client id, so Sluice's issuer `audience` is set to that client
 * id, as Kubernetes does for OIDC. The token is verified (signature from
 * the issuer's JWKS, iss, aud = Sluice's audience, exp) before it is cached,
 * so a token Sluice would refuse is never kept.
 */
export async function login(opts: LoginOptions): Promise<LoginResult> {
  const apiUrl = normalizeApiUrl(opts.url);
  const issuer = chooseIssuer(await loginIssuers(apiUrl), opts.issuer, apiUrl);
  const discovery = await discover(issuer);
  const prompt = opts.prompt ?? terminalPrompt;
  const nonce = random();
  const tokens = opts.device
    ? await deviceFlow(issuer, discovery, prompt, opts.sleep ?? sleepSeconds)
    : await authorizationCodeFlow(issuer, discovery, prompt, nonce, opts);
  if (typeof tokens.id_token !== 'string') {
    throw new SluiceError('login_no_id_token', `issuer ${issuer.name} returned no ID token; its login scopes must include "openid" (identity.issuers[].login.scopes)`);
  }
  const payload = await verifyIdToken(tokens.id_token, issuer, discovery, opts.device ? undefined : nonce);
  const entry: CachedToken = {
    token: tokens.id_token,
    expiresAt: new Date((payload.exp as number) * 1000).toISOString(),
    issuer: issuer.issuer,
    subject: payload.sub as string,
  };
  (opts.cache ?? new TokenCache()).save(apiUrl, entry);
  return { apiUrl, issuer, entry };
}

async function loginIssuers(apiUrl: string): Promise<LoginIssuer[]> {
  let res: Response;
  try {
    res = await fetch(`${apiUrl}/api/v1/login`, { headers: { accept: 'application/json' }, signal: AbortSignal.timeout(HTTP_TIMEOUT_SECONDS * 1000) });
  } catch (err) {
    throw new SluiceError('api_unreachable', `cannot reach the Sluice API at ${apiUrl} (${(err as Error).message}); check --url`, { cause: err });
  }
  const body = (await res.json().catch(() => undefined)) as { issuers?: unknown } | undefined;
  if (!res.ok || !Array.isArray(body?.issuers)) {
    throw new SluiceError('login_unavailable', `${apiUrl} does not offer login (GET /api/v1/login answered ${res.status}); check --url, or upgrade the gateway`);
  }
  return body.issuers.filter(
    (i): i is LoginIssuer =>
      typeof i === 'object' && i !== null &&
      ['name', 'issuer', 'client_id', 'audience'].every((k) => typeof (i as Record<string, unknown>)[k] === 'string') &&
      Array.isArray((i as Record<string, unknown>).scopes),
  );
}

function chooseIssuer(issuers: LoginIssuer[], name: string | undefined, apiUrl: string): LoginIssuer {
  if (issuers.length === 0) {
    throw new SluiceError('login_not_configured', `${apiUrl} offers no issuer for login; an administrator adds login: { client_id } to an issuer in identity.issuers`);
  }
  const names = issuers.map((i) => i.name).join(', ');
  if (name !== undefined) {
    const found = issuers.find((i) => i.name === name);
    if (!found) throw new SluiceError('login_issuer_unknown', `${apiUrl} offers no login issuer named ${JSON.stringify(name)}; choose one of: ${names}`);
    return found;
  }
  if (issuers.length > 1) throw new SluiceError('login_issuer_ambiguous', `${apiUrl} offers several login issuers; choose one with --issuer: ${names}`);
  return issuers[0];
}

async function discover(issuer: LoginIssuer): Promise<Discovery> {
  const url = `${issuer.issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;
  let doc: Record<string, unknown>;
  try {
    doc = (await fetchJson(url, HTTP_TIMEOUT_SECONDS)) as Record<string, unknown>;
  } catch (err) {
    const reason = err instanceof FetchFailure ? err.reason : 'request failed';
    throw new SluiceError('login_discovery_failed', `cannot read the OpenID configuration of issuer ${issuer.name} at ${url} (${reason}); check that the IdP is reachable from here`, { cause: err });
  }
  // OpenID Discovery: the document must name the very issuer asked for, or its endpoints belong to someone else.
  if (doc?.issuer !== issuer.issuer) {
    throw new SluiceError('login_discovery_failed', `the OpenID configuration at ${url} is not for issuer ${issuer.issuer}; check identity.issuers[].issuer`);
  }
  for (const k of ['authorization_endpoint', 'token_endpoint', 'jwks_uri'] as const) {
    if (typeof doc[k] !== 'string' || !URL.canParse(doc[k])) throw new SluiceError('login_discovery_failed', `the OpenID configuration of issuer ${issuer.name} has no valid ${k}`);
  }
  const methods = doc.code_challenge_methods_supported;
  if (Array.isArray(methods) && !methods.includes('S256')) {
    throw new SluiceError('login_discovery_failed', `issuer ${issuer.name} does not support PKCE with S256, which sluice login requires`);
  }
  const device = typeof doc.device_authorization_endpoint === 'string' && URL.canParse(doc.device_authorization_endpoint) ? doc.device_authorization_endpoint : undefined;
  return { authorization_endpoint: doc.authorization_endpoint as string, token_endpoint: doc.token_endpoint as string, jwks_uri: doc.jwks_uri as string, device_authorization_endpoint: device };
}

interface TokenResponse {
  id_token?: unknown;
  error?: unknown;
  error_description?: unknown;
}

/** IdP error fields are untrusted text: codes are kept only when they look like codes, descriptions are cut and stripped of control characters. */
function idpError(body: TokenResponse | undefined, status: number): string {
  const code = typeof body?.error === 'string' && /^[\w.-]{1,64}$/.test(body.error) ? body.error : `HTTP ${status}`;
  const description = typeof body?.error_description === 'string' ? body.error_description.replace(/[^\x20-\x7e]/g, ' ').slice(0, 200).trim() : '';
  return description ? `${code}: ${description}` : code;
}

async function postForm(url: string, params: Record<string, string>): Promise<{ status: number; body: TokenResponse | undefined }> {
  let res: Response;
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: new URLSearchParams(params),
      redirect: 'error',
      signal: AbortSignal.timeout(HTTP_TIMEOUT_SECONDS * 1000),
    });
  } catch (err) {
    throw new SluiceError('login_idp_unreachable', `cannot reach ${new URL(url).origin} (${(err as Error).message}); check that the IdP is reachable from here`, { cause: err });
  }
  return { status: res.status, body: (await res.json().catch(() => undefined)) as TokenResponse | undefined };
}

async function authorizationCodeFlow(issuer: LoginIssuer, d: Discovery, prompt: LoginPrompt, nonce: string, opts: LoginOptions): Promise<TokenResponse> {
  const port = opts.port ?? 0;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new SluiceError('login_port_invalid', '--port must be a port number from 1 to 65535');
  const verifier = random();
  const state = random();
  const callback = await listenForCallback(port, state, opts.timeoutSeconds ?? 300);
  const redirectUri = `http://127.0.0.1:${callback.port}/callback`;
  try {
    const url = new URL(d.authorization_endpoint);
    const params: Record<string, string> = {
      response_type: 'code',
      client_id: issuer.client_id,
      redirect_uri: redirectUri,
      scope: issuer.scopes.join(' '),
      state,
      nonce,
      code_challenge: createHash('sha256').update(verifier).digest('base64url'),
      code_challenge_method: 'S256',
    };
    for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
    prompt.authorize(url.href);
    if (opts.browser !== false) openBrowser(url.href);
    const code = await callback.code;
    const res = await postForm(d.token_endpoint, {
      grant_type: 'authorization_code',
      code,
      redirect_uri: redirectUri,
      client_id: issuer.client_id,
      code_verifier: verifier,
    });
    if (res.status !== 200 || !res.body) throw new SluiceError('login_failed', `issuer ${issuer.name} refused to issue a token (${idpError(res.body, res.status)}); run sluice login again`);
    return res.body;
  } finally {
    callback.close();
  }
}

const PAGE = (text: string): string => `<!DOCTYPE html><html><head><meta charset="utf-8"><title>Sluice login</title></head><body><p>${text}</p></body></html>`;

/**
 * The loopback redirect target (RFC 8252): takes one answer on /callback
 * and closes. An answer with the wrong state ends the login: it did not come
 * from the request this command made (a forged or stale redirect), and its
 * code is never redeemed.
 */
async function listenForCallback(port: number, state: string, timeoutSeconds: number): Promise<{ port: number; code: Promise<string>; close(): void }> {
  let settle!: { resolve: (code: string) => void; reject: (err: SluiceError) => void };
  const code = new Promise<string>((resolve, reject) => (settle = { resolve, reject }));
  let done = false;
  const finish = (err: SluiceError | undefined, value?: string): void => {
    if (done) return;
    done = true;
    if (err) settle.reject(err);
    else settle.resolve(value!);
  };
  const server: Server = createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (u.pathname !== '/callback' || req.method !== 'GET' || done) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    const answer = (status: number, text: string): void => {
      res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }).end(PAGE(text));
    };
    const got = Buffer.from(u.searchParams.get('state') ?? '');
    const want = Buffer.from(state);
    if (got.length !== want.length || !timingSafeEqual(got, want)) {
      answer(400, 'Sign-in refused: this answer does not belong to the login started in your terminal. Run sluice login again.');
      finish(new SluiceError('login_state_mismatch', 'the sign-in answer did not carry the state of this login (a forged or stale redirect); nothing was saved; run sluice login again'));
      return;
    }
    const error = u.searchParams.get('error');
    const c = u.searchParams.get('code');
    if (error !== null || !c) {
      answer(400, 'Sign-in failed; see your terminal.');
      const why = idpError({ error: error ?? undefined, error_description: u.searchParams.get('error_description') ?? undefined }, 400);
      finish(new SluiceError('login_denied', `the identity provider did not sign you in (${why}); run sluice login again`));
      return;
    }
    answer(200, 'Signed in to Sluice. You can close this tab and return to your terminal.');
    finish(undefined, c);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(new SluiceError('login_port_unavailable', `cannot listen on 127.0.0.1:${port} (${err.code ?? 'error'}); pass another --port, or leave it out for a free one`)),
    );
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const timer = setTimeout(
    () => finish(new SluiceError('login_timeout', `no sign-in within ${timeoutSeconds} s; run sluice login again (or sluice login --device on a machine without a browser)`)),
    timeoutSeconds * 1000,
  );
  return {
    port: (server.address() as AddressInfo).port,
    code,
    close() {
      clearTimeout(timer);
      finish(new SluiceError('login_cancelled', 'the login was cancelled'));
      code.catch(() => undefined);
      server.closeAllConnections();
      server.close();
    },
  };
}

async function deviceFlow(issuer: LoginIssuer, d: Discovery, prompt: LoginPrompt, sleep: (s: number) => Promise<void>): Promise<TokenResponse> {
  if (!d.device_authorization_endpoint) {
    throw new SluiceError('login_device_unsupported', `issuer ${issuer.name} offers no device authorization endpoint; log in without --device`);
  }
  const start = await postForm(d.device_authorization_endpoint, { client_id: issuer.client_id, scope: issuer.scopes.join(' ') });
  const b = start.body as Record<string, unknown> | undefined;
  if (start.status !== 200 || typeof b?.device_code !== 'string' || typeof b.user_code !== 'string' || typeof b.verification_uri !== 'string') {
    throw new SluiceError('login_failed', `issuer ${issuer.name} refused the device login (${idpError(start.body, start.status)}); check that client ${issuer.client_id} may use the device flow`);
  }
  const expiresIn = typeof b.expires_in === 'number' && b.expires_in > 0 ? b.expires_in : 600;
  // RFC 8628 3.5: 5 s unless the server says otherwise, plus 5 s for every slow_down.
  let interval = typeof b.interval === 'number' && b.interval >= 1 ? b.interval : 5;
  prompt.device({
    verificationUri: b.verification_uri,
    verificationUriComplete: typeof b.verification_uri_complete === 'string' ? b.verification_uri_complete : undefined,
    userCode: b.user_code,
    expiresInSeconds: expiresIn,
  });
  const deadline = Date.now() + expiresIn * 1000;
  for (;;) {
    await sleep(interval);
    if (Date.now() >= deadline) throw new SluiceError('login_timeout', 'the device code expired before the sign-in finished; run sluice login --device again');
    const res = await postForm(d.token_endpoint, { grant_type: DEVICE_GRANT, device_code: b.device_code, client_id: issuer.client_id });
    if (res.status === 200 && res.body) return res.body;
    const error = res.body?.error;
    if (error === 'authorization_pending') continue;
    if (error === 'slow_down') {
      interval += 5;
      continue;
    }
    if (error === 'access_denied') throw new SluiceError('login_denied', 'the sign-in was declined in the browser; run sluice login --device again');
    if (error === 'expired_token') throw new SluiceError('login_timeout', 'the device code expired before the sign-in finished; run sluice login --device again');
    throw new SluiceError('login_failed', `issuer ${issuer.name} refused to issue a token (${idpError(res.body, res.status)}); run sluice login --device again`);
  }
}

async function verifyIdToken(token: string, issuer: LoginIssuer, d: Discovery, nonce: string | undefined): Promise<JWTPayload> {
  const jwks = createRemoteJWKSet(new URL(d.jwks_uri), { timeoutDuration: HTTP_TIMEOUT_SECONDS * 1000 });
  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(token, jwks, {
      issuer: issuer.issuer,
      audience: issuer.audience,
      algorithms: ASYMMETRIC,
      clockTolerance: CLOCK_TOLERANCE_SECONDS,
      requiredClaims: ['exp', 'sub'],
    }));
  } catch (err) {
    if (err instanceof errors.JWTClaimValidationFailed && err.claim === 'aud') {
      const aud = JSON.stringify(err.payload.aud ?? null).slice(0, 120);
      throw new SluiceError(
        'login_audience_mismatch',
        `the ID token from issuer ${issuer.name} is for audience ${aud}, but Sluice requires ${JSON.stringify(issuer.audience)}; nothing was saved. ` +
          `Sluice authenticates the ID token, whose audience is the login client id: an administrator sets identity.issuers[].audience to ${JSON.stringify(issuer.client_id)} for issuer ${issuer.name}`,
      );
    }
    if (err instanceof errors.JWTExpired) {
      throw new SluiceError('login_token_expired', `the ID token from issuer ${issuer.name} is already expired; check this machine's clock and run sluice login again`);
    }
    const what = err instanceof errors.JWTClaimValidationFailed ? `its ${err.claim} claim is wrong` : 'its signature or format does not verify';
    throw new SluiceError('login_token_invalid', `the ID token from issuer ${issuer.name} was refused (${what}); nothing was saved; run sluice login again`);
  }
  if (nonce !== undefined && payload.nonce !== nonce) {
    throw new SluiceError('login_nonce_mismatch', `the ID token from issuer ${issuer.name} does not carry this login's nonce (a replayed token); nothing was saved; run sluice login again`);
  }
  if (typeof payload.sub !== 'string' || payload.sub === '') {
    throw new SluiceError('login_token_invalid', `the ID token from issuer ${issuer.name} names no subject; nothing was saved`);
  }
  return payload;
}

/** The desktop's URL opener, if this machine has one on PATH. */
function browserOpener(): string | undefined {
  const name = process.platform === 'darwin' ? 'open' : process.platform === 'win32' ? undefined : 'xdg-open';
  if (!name) return undefined;
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    try {
      accessSync(join(dir, name), constants.X_OK);
      return join(dir, name);
    } catch {
      // not here; keep looking along PATH
    }
  }
  return undefined;
}

/** Best effort: the URL is printed anyway, so an opener that fails changes nothing. */
function openBrowser(url: string): void {
  const opener = browserOpener();
  if (!opener) return;
  const child = spawn(opener, [url], { detached: true, stdio: 'ignore' });
  child.on('error', () => undefined);
  child.unref();
}

const terminalPrompt: LoginPrompt = {
  authorize(url) {
    process.stderr.write(`Open this URL in a browser to log in:\n\n  ${url}\n\nWaiting for the sign-in (Ctrl-C to cancel)...\n`);
  },
  device(d) {
    const complete = d.verificationUriComplete ? `\n(or open ${d.verificationUriComplete}, which has the code filled in)` : '';
    process.stderr.write(`To log in, open ${d.verificationUri} on any device and enter the code\n\n  ${d.userCode}\n${complete}\nThe code is valid for ${Math.round(d.expiresInSeconds / 60)} min. Waiting...\n`);
  },
};

/** --url, else $SLUICE_URL, else the public URL of the config file's gateway. */
function apiUrlFrom(o: { url?: string; config?: string }): string {
  if (o.url) return o.url;
  if (process.env.SLUICE_URL) return process.env.SLUICE_URL;
  return publicUrl(loadConfigFile(findConfigFile(o.config)).config);
}

function status(apiUrl: string, cache: TokenCache): void {
  const entry = cache.get(apiUrl);
  const key = normalizeApiUrl(apiUrl);
  if (!entry) throw new SluiceError('not_logged_in', `not logged in to ${key}; run "sluice login --url ${key}"`);
  const live = cache.usable(apiUrl) !== undefined;
  process.stdout.write(`${key}: ${entry.subject} (issuer ${entry.issuer}), ${live ? 'valid until' : 'expired at'} ${entry.expiresAt}\n`);
  if (!live) throw new SluiceError('login_expired', `the login for ${key} has expired; run "sluice login --url ${key}"`);
}

export function loginCommands(program: Command): void {
  program
    .command('login')
    .description('log in at your identity provider and keep the token for the sluice CLI')
    .option('--url <url>', 'Sluice API base URL (default: $SLUICE_URL, else from the config)')
    .option('--config <file>', 'sluice.yaml, only to find the API URL')
    .option('--issuer <name>', 'issuer to log in at, when Sluice offers several')
    .option('--device', 'device login: enter a code on another device (for machines without a browser)')
    .option('--no-browser', 'print the sign-in URL without opening a browser')
    .option('--port <n>', 'loopback port for the sign-in redirect (default: a free one)', (v: string) => {
      if (!/^\d{1,5}$/.test(v)) throw new SluiceError('login_port_invalid', '--port must be a port number from 1 to 65535');
      return Number(v);
    })
    .option('--status', 'show who is logged in, and until when, instead of logging in')
    .action(async (o: { url?: string; config?: string; issuer?: string; device?: boolean; browser: boolean; port?: number; status?: boolean }) => {
      const apiUrl = apiUrlFrom(o);
      if (o.status) {
        status(apiUrl, new TokenCache());
        return;
      }
      const r = await login({ url: apiUrl, issuer: o.issuer, device: o.device, browser: o.browser, port: o.port });
      process.stdout.write(`Logged in to ${r.apiUrl} as ${r.entry.subject} (issuer ${r.issuer.name}) until ${r.entry.expiresAt}\n`);
    });
  program
    .command('logout')
    .description('forget the cached login token for a Sluice API')
    .option('--url <url>', 'Sluice API base URL (default: $SLUICE_URL, else from the config)')
    .option('--config <file>', 'sluice.yaml, only to find the API URL')
    .action((o: { url?: string; config?: string }) => {
      const apiUrl = apiUrlFrom(o);
      const removed = new TokenCache().remove(apiUrl);
      process.stdout.write(removed ? `Logged out of ${normalizeApiUrl(apiUrl)}\n` : `Not logged in to ${normalizeApiUrl(apiUrl)}\n`);
    });
}
