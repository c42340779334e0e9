import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { SluiceError } from '../errors.js';

/** What `sluice login` keeps per Sluice API: the token and enough to show whose it is. */
export interface CachedToken {
  readonly token: string;
  /** ISO 8601; the token's exp. */
  readonly expiresAt: string;
  /** Issuer URL (the token's iss). */
  readonly issuer: string;
  readonly subject: string;
}

/** Tokens are not used in their last minute, so a request never starts with a token about to lapse. */
export const EXPIRY_MARGIN_SECONDS = 60;

/** $SLUICE_CONFIG_DIR, else $XDG_CONFIG_HOME/sluice, else ~/.config/sluice. */
export function configDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.SLUICE_CONFIG_DIR) return env.SLUICE_CONFIG_DIR;
  if (env.XDG_CONFIG_HOME) return join(env.XDG_CONFIG_HOME, 'sluice');
  return join(homedir(), '.config', 'sluice');
}

/**
 * The cache key for an API base URL: scheme and host lower-cased, default
 * port dropped, no trailing slash, query or fragment; so `--url` spelled
 * either way finds the same login.
 */
export function normalizeApiUrl(raw: string): string {
  const u = URL.parse(raw.trim());
  if (!u || (u.protocol !== 'http:' && u.protocol !== 'https:') || !u.hostname) {
    throw new SluiceError('api_url_invalid', `the Sluice API URL must be http(s)://host[:port][/path], for example https://sluice.example.com`);
  }
  if (u.username || u.password) throw new SluiceError('api_url_invalid', 'the Sluice API URL must not carry a user name or password');
  const path = u.pathname.replace(/\/+$/, '');
  return `${u.protocol}//${u.host}${path}`;
}

function isKey(url: string): boolean {
  try {
    return normalizeApiUrl(url) === url;
  } catch {
    return false;
  }
}

function isCachedToken(v: unknown): v is CachedToken {
  if (typeof v !== 'object' || v === null) return false;
  const e = v as Record<string, unknown>;
  return (
    typeof e.token === 'string' && e.token.length > 0 &&
    typeof e.expiresAt === 'string' && !Number.isNaN(Date.parse(e.expiresAt)) &&
    typeof e.issuer === 'string' &&
    typeof e.subject === 'string'
  );
}

/**
 * tokens.json in the CLI's config directory: one entry per normalized API
 * URL. The directory is 0700 and the file 0600, written whole to a temporary
 * file and renamed, so a crash or a concurrent login never leaves half a
 * file, and no other user can read a token at any moment.
 */
export class TokenCache {
  readonly file: string;

  constructor(readonly dir: string = configDir()) {
    this.file = join(dir, 'tokens.json');
  }

  /**
   * Every well-formed entry. A missing, unreadable or corrupt file is an
   * empty cache: it only saves a login, and the next login rewrites it.
   */
  all(): Record<string, CachedToken> {
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(this.file, 'utf8'));
    } catch {
      return {};
    }
    const tokens = (parsed as { tokens?: unknown } | null)?.tokens;
    const out: Record<string, CachedToken> = {};
    if (typeof tokens !== 'object' || tokens === null || Array.isArray(tokens)) return out;
    for (const [url, entry] of Object.entries(tokens)) {
      // Only keys this cache could have written; that also keeps "__proto__" and other junk out of `out`.
      if (isCachedToken(entry) && isKey(url)) out[url] = { token: entry.token, expiresAt: entry.expiresAt, issuer: entry.issuer, subject: entry.subject };
    }
    return out;
  }

  get(apiUrl: string): CachedToken | undefined {
    const entries = this.all();
    const key = normalizeApiUrl(apiUrl);
    return Object.hasOwn(entries, key) ? entries[key] : undefined;
  }

  /** The entry for `apiUrl` if it is still good for at least EXPIRY_MARGIN_SECONDS. */
  usable(apiUrl: string, now: number = Date.now()): CachedToken | undefined {
    const entry = this.get(apiUrl);
    if (!entry) return undefined;
    return Date.parse(entry.expiresAt) - EXPIRY_MARGIN_SECONDS * 1000 > now ? entry : undefined;
  }

  save(apiUrl: string, entry: CachedToken): void {
    const entries = this.all();
    entries[normalizeApiUrl(apiUrl)] = entry;
    this.#write(entries);
  }

  /** Removes the entry; false when there was none. */
  remove(apiUrl: string): boolean {
    const entries = this.all();
    const key = normalizeApiUrl(apiUrl);
    if (!Object.hasOwn(entries, key)) return false;
    delete entries[key];
    this.#write(entries);
    return true;
  }

  #write(entries: Record<string, CachedToken>): void {
    try {
      mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      chmodSync(this.dir, 0o700);
    } catch (err) {
      throw new SluiceError('token_cache_unwritable', `cannot create ${this.dir} (${(err as NodeJS.ErrnoException).code ?? 'error'}); set SLUICE_CONFIG_DIR to a directory you own`, { cause: err });
    }
    const tmp = join(this.dir, `.tokens.json.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
    try {
      const fd = openSync(tmp, 'wx', 0o600);
      try {
        writeSync(fd, JSON.stringify({ version: 1, tokens: entries }, null, 2) + '\n');
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, this.file);
    } catch (err) {
      rmSync(tmp, { force: true });
      throw new SluiceError('token_cache_unwritable', `cannot write ${this.file} (${(err as NodeJS.ErrnoException).code ?? 'error'}); check the permissions of ${this.dir} or set SLUICE_CONFIG_DIR`, { cause: err });
    }
  }
}
