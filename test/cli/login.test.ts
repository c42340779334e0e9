import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ApiClient } from '../../src/cli/api-client.js';
import { login, type LoginOptions, type LoginPrompt } from '../../src/cli/commands/login.js';
import { normalizeApiUrl, TokenCache, type CachedToken } from '../../src/cli/token-cache.js';
import { startGateway, type TestGateway } from '../support/gateway.js';
import { startLoginOidcProvider, type LoginOidcProvider } from '../support/oidc-login.js';
import { collectOutput } from '../support/clients.js';
import { runCli, spawnCli } from './run-cli.js';

// Spawned CLI runs compile TypeScript in a fresh Node process; on a busy 2-core machine that takes a while.
vi.setConfig({ testTimeout: 90_000 });

let idp: LoginOidcProvider;
let t: TestGateway;
let cfg: Record<string, any>;
let scratch: string;

beforeAll(async () => {
  idp = await startLoginOidcProvider();
  t = await startGateway((c) => {
    c.identity.issuers = [
      // Sluice authenticates the ID token the CLI keeps, whose aud is the login client id.
      { name: 'corp', issuer: idp.issuer, audience: idp.clientId, login: { client_id: idp.clientId, scopes: ['openid', 'groups'] } },
      { name: 'ci', issuer: 'http://127.0.0.1:9/ci', audience: 'sluice' },
    ];
    c.policies.push({ name: 'corp-auditors', when: { groups: ['corp:auditor'] }, permissions: ['sessions:read'] });
    cfg = c;
  });
  scratch = mkdtempSync(join(tmpdir(), 'sluice-login-'));
});
afterAll(async () => {
  await t?.stop();
  await idp?.stop();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

let dirs = 0;
/** A fresh CLI config directory, also the one ApiClient reads through $SLUICE_CONFIG_DIR. */
function freshCache(): TokenCache {
  const dir = join(scratch, `config-${++dirs}`, 'sluice');
  process.env.SLUICE_CONFIG_DIR = dir;
  return new TokenCache(dir);
}

type Page = { url: string; status: number; body: string };

/** Runs the browser login in this process; `drive` plays the person given the authorization URL. */
async function browserLogin(cache: TokenCache, drive: (url: string) => Promise<Page> = (url) => idp.signIn(url), extra: Partial<LoginOptions> = {}) {
  let page: Promise<Page> | undefined;
  let authorizeUrl = '';
  const prompt: LoginPrompt = {
    authorize(url) {
      authorizeUrl = url;
      page = drive(url);
    },
    device() {
      throw new Error('unexpected device prompt');
    },
  };
  const outcome = await login({ url: t.httpUrl, browser: false, cache, prompt, ...extra }).then(
    (r) => ({ ok: true as const, r }),
    (err: { code: string; message: string }) => ({ ok: false as const, err }),
  );
  return { outcome, authorizeUrl, page: page ? await page : undefined };
}

interface WhoAmI {
  issuer: string;
  subject: string;
  groups: string[];
}

describe('GET /api/v1/login', () => {
  it('lists the issuers people can log in with, without authentication and without secrets', async () => {
    const res = await fetch(`${t.httpUrl}/api/v1/login`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      issuers: [{ name: 'corp', issuer: idp.issuer, client_id: 'sluice-cli', scopes: ['openid', 'groups'], audience: 'sluice-cli' }],
    });
  });
});

describe('sluice login with a browser (authorization code + PKCE)', () => {
  it('signs in, caches a verified ID token, and the API client then uses it', async () => {
    idp.account = { subject: 'alice', groups: ['auditor'] };
    const cache = freshCache();
    const { outcome, authorizeUrl, page } = await browserLogin(cache);
    expect(outcome.ok).toBe(true);

    const q = new URL(authorizeUrl).searchParams;
    expect(q.get('code_challenge_method')).toBe('S256');
    expect(q.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(q.get('state')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(q.get('nonce')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(q.get('redirect_uri')).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/callback$/);
    expect(q.get('scope')).toBe('openid groups');
    expect(page?.status).toBe(200);
    expect(page?.body).toContain('Signed in to Sluice');

    const entry = cache.get(t.httpUrl)!;
    expect(entry).toMatchObject({ issuer: idp.issuer, subject: 'alice' });
    const claims = decodeJwt(entry.token);
    expect(claims).toMatchObject({ iss: idp.issuer, aud: 'sluice-cli', sub: 'alice', nonce: q.get('nonce'), groups: ['auditor'] });
    expect(entry.expiresAt).toBe(new Date(claims.exp! * 1000).toISOString());

    const api = await ApiClient.create({ url: t.httpUrl });
    const me = await api.get<WhoAmI>('/api/v1/whoami');
    expect(me).toMatchObject({ issuer: idp.issuer, subject: 'alice', groups: ['corp:auditor'] });
    await expect(api.get('/api/v1/sessions')).resolves.toMatchObject({ sessions: [] });
  });

  it('writes the cache 0600 in a 0700 directory, keyed by the normalized API URL', async () => {
    idp.account = { subject: 'alice', groups: [] };
    const cache = freshCache();
    const { outcome } = await browserLogin(cache, undefined, { url: t.httpUrl.replace('http://', 'HTTP://') + '//' });
    expect(outcome.ok).toBe(true);
    expect(statSync(cache.file).mode & 0o777).toBe(0o600);
    expect(statSync(cache.dir).mode & 0o777).toBe(0o700);
    const file = JSON.parse(readFileSync(cache.file, 'utf8')) as { tokens: Record<string, CachedToken> };
    expect(Object.keys(file.tokens)).toEqual([t.httpUrl]);
    expect(Object.keys(file.tokens[t.httpUrl]).sort()).toEqual(['expiresAt', 'issuer', 'subject', 'token']);
  });

  it('refuses an answer whose state is not this login\'s and caches nothing', async () => {
    const cache = freshCache();
    const forged = async (url: string): Promise<Page> => {
      const u = new URL(url);
      u.searchParams.set('state', 'A'.repeat(43));
      return idp.signIn(u.href);
    };
    const { outcome, page } = await browserLogin(cache, forged);
    expect(outcome.ok).toBe(false);
    expect(!outcome.ok && outcome.err.code).toBe('login_state_mismatch');
    expect(page?.status).toBe(400);
    expect(page?.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/callback\?/);
    expect(cache.all()).toEqual({});
  });

  it('refuses a callback without state, and reports an IdP error without echoing its markup', async () => {
    const cache = freshCache();
    const noState = await browserLogin(cache, async (url) => {
      const cb = new URL(new URL(url).searchParams.get('redirect_uri')!);
      cb.searchParams.set('code', 'stolen-code');
      const res = await fetch(cb);
      return { url: cb.href, status: res.status, body: await res.text() };
    });
    expect(!noState.outcome.ok && noState.outcome.err.code).toBe('login_state_mismatch');

    const denied = await browserLogin(cache, async (url) => {
      const q = new URL(url).searchParams;
      const cb = new URL(q.get('redirect_uri')!);
      cb.searchParams.set('state', q.get('state')!);
      cb.searchParams.set('error', 'access_denied');
      cb.searchParams.set('error_description', 'user said no\n<script>x</script>');
      const res = await fetch(cb);
      return { url: cb.href, status: res.status, body: await res.text() };
    });
    expect(denied.outcome.ok).toBe(false);
    if (!denied.outcome.ok) {
      expect(denied.outcome.err.code).toBe('login_denied');
      expect(denied.outcome.err.message).toContain('access_denied: user said no <script>x</script>');
      expect(denied.outcome.err.message).not.toContain('\n');
    }
    expect(denied.page?.body).not.toContain('<script>');
    expect(cache.all()).toEqual({});
  });

  it('refuses, and does not cache, an ID token whose audience is not the one Sluice requires', async () => {
    const cache = freshCache();
    cfg.identity.issuers[0].audience = 'urn:sluice:api';
    t.writeConfig(cfg);
    expect((await t.gw.reload()).ok).toBe(true);
    try {
      const { outcome, page } = await browserLogin(cache);
      expect(page?.status).toBe(200);
      expect(outcome.ok).toBe(false);
      if (!outcome.ok) {
        expect(outcome.err.code).toBe('login_audience_mismatch');
        expect(outcome.err.message).toContain('"urn:sluice:api"');
        expect(outcome.err.message).toContain('identity.issuers[].audience to "sluice-cli"');
      }
      expect(cache.all()).toEqual({});
    } finally {
      cfg.identity.issuers[0].audience = idp.clientId;
      t.writeConfig(cfg);
      expect((await t.gw.reload()).ok).toBe(true);
    }
  });

  it('works end to end through the sluice binary: login, use, status, logout', async () => {
    idp.account = { subject: 'dora', groups: ['auditor'] };
    const dir = join(scratch, 'spawned');
    const env = { SLUICE_CONFIG_DIR: dir };
    const child = spawnCli(['login', '--url', t.httpUrl, '--no-browser'], env);
    const done = collectOutput(child, 60_000);
    const url = await new Promise<string>((resolve, reject) => {
      let err = '';
      child.stderr!.on('data', (d: Buffer) => {
        err += d.toString();
        const m = /^\s+(http:\S+)$/m.exec(err);
        if (m) resolve(m[1]);
      });
      child.on('close', () => reject(new Error(`login exited before printing a URL: ${err}`)));
    });
    const page = await idp.signIn(url);
    expect(page.status).toBe(200);
    const r = await done;
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^Logged in to ${t.httpUrl} as dora \\(issuer corp\\) until \\d{4}-`));
    const token = new TokenCache(dir).get(t.httpUrl)!.token;
    expect(r.stdout + r.stderr).not.toContain(token);

    const sessions = await runCli(['sessions', 'list', '--url', t.httpUrl, '--json'], env);
    expect(sessions.stderr).toBe('');
    expect(JSON.parse(sessions.stdout)).toEqual([]);

    const status = await runCli(['login', '--status', '--url', t.httpUrl + '/'], env);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(new RegExp(`^${t.httpUrl}: dora \\(issuer ${idp.issuer}\\), valid until \\d{4}-`));
    expect(status.stdout + status.stderr).not.toContain(token);

    const out = await runCli(['logout', '--url', t.httpUrl], env);
    expect(out.stdout).toBe(`Logged out of ${t.httpUrl}\n`);
    const after = await runCli(['login', '--status', '--url', t.httpUrl], env);
    expect(after.code).toBe(1);
    expect(after.stderr).toContain('[not_logged_in]');
  });
});

describe('sluice login --device (RFC 8628)', () => {
  it('shows a code, polls while pending, backs off on slow_down, and caches the token', async () => {
    idp.account = { subject: 'erin', groups: ['auditor'] };
    idp.slowDowns = 2;
    const cache = freshCache();
    let complete: string | undefined;
    let shown: { verificationUri: string; userCode: string } | undefined;
    const waits: number[] = [];
    let page: Page | undefined;
    const prompt: LoginPrompt = {
      authorize() {
        throw new Error('unexpected browser prompt');
      },
      device(d) {
        shown = d;
        complete = d.verificationUriComplete;
      },
    };
    // The person signs in only after two polls, so both are answered slow_down and the interval grows from 5 s by 5 s each time.
    const sleep = async (seconds: number): Promise<void> => {
      waits.push(seconds);
      if (waits.length > 3) throw new Error(`still polling after the sign-in: ${page?.status} ${page?.body}`);
      if (waits.length === 3) page = await idp.signIn(complete!);
    };
    const r = await login({ url: t.httpUrl, device: true, cache, prompt, sleep });
    expect(shown?.verificationUri).toBe(`${idp.issuer}/device`);
    expect(shown?.userCode).toMatch(/^[A-Z]{4}-?[A-Z]{4}$/);
    expect(waits).toEqual([5, 10, 15]);
    expect(idp.slowDowns).toBe(0);
    expect(page?.body).toContain('Signed in');
    expect(r.entry).toMatchObject({ subject: 'erin', issuer: idp.issuer });

    const api = await ApiClient.create({ url: t.httpUrl });
    expect(await api.get<WhoAmI>('/api/v1/whoami')).toMatchObject({ subject: 'erin', groups: ['corp:auditor'] });
  });
});

describe('the API client and the login cache', () => {
  let good: string;
  beforeAll(async () => {
    idp.account = { subject: 'frank', groups: [] };
    const cache = freshCache();
    const { outcome } = await browserLogin(cache);
    expect(outcome.ok).toBe(true);
    good = cache.get(t.httpUrl)!.token;
  });

  const entry = (token: string, expiresInSeconds: number): CachedToken => ({
    token,
    expiresAt: new Date(Date.now() + expiresInSeconds * 1000).toISOString(),
    issuer: idp.issuer,
    subject: 'frank',
  });

  it('uses a cached token that is good for more than a minute', async () => {
    freshCache().save(t.httpUrl, entry(good, 300));
    const api = await ApiClient.create({ url: t.httpUrl, config: t.configFile });
    expect((await api.get<WhoAmI>('/api/v1/whoami')).subject).toBe('frank');
  });

  it('does not use an expired token, nor one in its last minute, and falls back to the development issuer', async () => {
    for (const seconds of [-600, 30]) {
      freshCache().save(t.httpUrl, entry(good, seconds));
      const api = await ApiClient.create({ url: t.httpUrl, config: t.configFile });
      expect((await api.get<WhoAmI>('/api/v1/whoami')).subject).toBe('demo');
    }
  });

  it('prefers --token and $SLUICE_TOKEN over the cache, and --as asks for the development issuer', async () => {
    freshCache().save(t.httpUrl, entry(good, 300));
    const dev = await t.token('gus');
    expect((await (await ApiClient.create({ url: t.httpUrl, token: dev })).get<WhoAmI>('/api/v1/whoami')).subject).toBe('gus');
    process.env.SLUICE_TOKEN = dev;
    try {
      expect((await (await ApiClient.create({ url: t.httpUrl })).get<WhoAmI>('/api/v1/whoami')).subject).toBe('gus');
    } finally {
      delete process.env.SLUICE_TOKEN;
    }
    const as = await ApiClient.create({ url: t.httpUrl, config: t.configFile, as: 'hana' });
    expect((await as.get<WhoAmI>('/api/v1/whoami')).subject).toBe('hana');
  });

  it('says to log in when there is no token at all', async () => {
    freshCache();
    const noDev = join(scratch, 'no-dev.yaml');
    writeFileSync(noDev, readFileSync(t.configFile, 'utf8').replace(/enabled: true/, 'enabled: false'));
    await expect(ApiClient.create({ url: t.httpUrl, config: noDev })).rejects.toMatchObject({
      code: 'token_missing',
      message: expect.stringContaining(`sluice login --url ${t.httpUrl}`),
    });
  });

  it('posts JSON bodies with the same token', async () => {
    freshCache().save(t.httpUrl, entry(good, 300));
    const api = await ApiClient.create({ url: t.httpUrl });
    // whoami has no POST route: the answer shows the request reached the API authenticated, as JSON.
    await expect(api.post('/api/v1/whoami', { a: 1 })).rejects.toMatchObject({ code: 'not_found' });
  });
});

describe('token cache', () => {
  it('maps every spelling of an API URL to one key', () => {
    const host = fc.constantFrom('sluice.example.com', '127.0.0.1', 'gw.internal');
    fc.assert(
      fc.property(fc.constantFrom('http', 'https', 'HTTPS', 'Http'), host, fc.boolean(), fc.integer({ min: 0, max: 3 }), fc.constantFrom('', '/sluice', '/a/b'), (scheme, h, upper, slashes, path) => {
        const s = scheme.toLowerCase();
        const base = `${s}://${h}${path}`;
        const spelled = `${scheme}://${upper ? h.toUpperCase() : h}${s === 'https' ? ':443' : ':80'}${path}${'/'.repeat(slashes)}`;
        expect(normalizeApiUrl(spelled)).toBe(base);
        expect(normalizeApiUrl(normalizeApiUrl(spelled))).toBe(base);
      }),
    );
  });

  it('refuses URLs that are not http(s) or carry credentials', () => {
    for (const bad of ['ftp://x', 'not a url', 'http://user:pw@host', 'file:///etc/passwd', '']) {
      expect(() => normalizeApiUrl(bad)).toThrow(expect.objectContaining({ code: 'api_url_invalid' }));
    }
  });

  it('treats any unreadable or malformed file as an empty cache, keeping well-formed entries', () => {
    const dir = join(scratch, 'fuzz');
    mkdirSync(dir, { recursive: true });
    const cache = new TokenCache(dir);
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.json(), fc.jsonValue().map((v) => JSON.stringify({ tokens: v }))), (content) => {
        writeFileSync(cache.file, content);
        const all = cache.all();
        for (const e of Object.values(all)) expect(typeof e.token).toBe('string');
        expect(cache.usable('http://127.0.0.1:1')).toBeUndefined();
      }),
    );
    const ok = { token: 't', expiresAt: new Date(Date.now() + 3_600_000).toISOString(), issuer: 'i', subject: 's' };
    const junk = { 'http://a': ok, 'http://b': { ...ok, expiresAt: 'soon' }, 'http://a/': ok, 'not a url': ok };
    writeFileSync(cache.file, JSON.stringify({ tokens: junk }).replace(/^\{"tokens":\{/, `{"tokens":{"__proto__":${JSON.stringify(ok)},`));
    expect(cache.all()).toEqual({ 'http://a': ok });
    cache.save('http://C/', ok);
    expect(Object.keys(cache.all()).sort()).toEqual(['http://a', 'http://c']);
    expect(cache.remove('http://c')).toBe(true);
    expect(cache.remove('http://c')).toBe(false);
  });
});
