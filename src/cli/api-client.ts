import type { Writable } from 'node:stream';
import { loadConfigFile } from '../config/load.js';
import { SluiceError } from '../errors.js';
import { Keyring } from '../keys/keyring.js';
import { devIssuerFor, publicUrl } from '../runtime/build-state.js';
import { findConfigFile } from './config-file.js';
import { TokenCache } from './token-cache.js';

export interface ApiOptions {
  config?: string;
  url?: string;
  token?: string;
  as?: string;
  asGroups?: string[];
  /** Lifetime of a development token minted for --as; long waits need more than the default 300 s. */
  devTokenSeconds?: number;
}

/**
 * The CLI's client for /api/v1. Commands that read or change state go
 * through the API (so they work against a remote gateway and obey policy);
 * the token comes from --token, $SLUICE_TOKEN, the `sluice login` token
 * cached for this API URL, or, where the config enables the development
 * issuer, a token minted locally for --as.
 */
export class ApiClient {
  private constructor(
    readonly baseUrl: string,
    private readonly token: string,
  ) {}

  static async create(opts: ApiOptions): Promise<ApiClient> {
    let url = opts.url ?? process.env.SLUICE_URL;
    let token = opts.token ?? process.env.SLUICE_TOKEN;
    // --as names the development issuer explicitly, so a cached login must not stand in for it.
    const cached = (apiUrl: string): string | undefined => (opts.as === undefined ? new TokenCache().usable(apiUrl)?.token : undefined);
    if (url && !token) token = cached(url);
    if (!url || !token) {
      const { config } = loadConfigFile(findConfigFile(opts.config));
      url ??= publicUrl(config);
      token ??= cached(url);
      if (!token) {
        const keyring = await Keyring.load(config.keys, config.store.data_dir);
        const dev = devIssuerFor(config, keyring);
        if (!dev) throw new SluiceError('token_missing', `no token: run "sluice login --url ${url}", pass --token or set SLUICE_TOKEN (the development issuer is not enabled)`);
        token = await dev.mint({ subject: opts.as ?? 'demo', groups: opts.asGroups ?? (opts.as ? [] : ['demo']), ttlSeconds: Math.max(300, Math.ceil(opts.devTokenSeconds ?? 0)) });
      }
    }
    return new ApiClient(url.replace(/\/+$/, ''), token);
  }

  async get<T>(path: string, query: Record<string, string | number | undefined> = {}): Promise<T> {
    return this.request<T>('GET', path, query);
  }

  async delete<T>(path: string): Promise<T> {
    return this.request<T>('DELETE', path, {});
  }

  /** POSTs `body` as JSON. */
  async post<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('POST', path, {}, body);
  }

  /**
   * Writes the body of GET `path` to `dest` as it arrives, waiting whenever
   * `dest` is full, and resolves with the bytes written. `dest` is left open
   * (it may be stdout). The 15 s timeout applies to the answer and to each
   * wait for the next chunk, not to waits on `dest` (a pager may hold it), so
   * a long download is fine and a stalled one ends.
   */
  async download(path: string, query: Record<string, string | number | undefined>, dest: Writable): Promise<number> {
    const u = new URL(this.baseUrl + path);
    for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== '') u.searchParams.set(k, String(v));
    const abort = new AbortController();
    const waiting = <T>(p: Promise<T>): Promise<T> => {
      const timer = setTimeout(() => abort.abort(), 15_000);
      return p.finally(() => clearTimeout(timer));
    };
    let res: Response;
    try {
      res = await waiting(fetch(u, { headers: { authorization: `Bearer ${this.token}` }, signal: abort.signal }));
    } catch (err) {
      throw new SluiceError('api_unreachable', `cannot reach the Sluice API at ${this.baseUrl} (${(err as Error).message}); is "sluice start" running?`);
    }
    if (!res.ok || !res.body) {
      const answer = (await res.json().catch(() => ({}))) as { error?: { code: string; message: string } };
      throw new SluiceError(answer.error?.code ?? `http_${res.status}`, answer.error?.message ?? `the API answered ${res.status}`);
    }
    const unwritable = (err: Error | null | undefined): SluiceError =>
      new SluiceError('download_unwritable', `cannot write the download (${err?.message ?? 'the destination was closed'})`);
    // Settles on drain, error or close, and removes its listeners, so a destination that fails never leaves the download hanging.
    const drained = (): Promise<void> =>
      new Promise((resolve, reject) => {
        const settle = (err?: Error | null): void => {
          dest.off('drain', onDrain).off('error', onError).off('close', onClose);
          if (err === undefined) resolve();
          else reject(unwritable(err));
        };
        const onDrain = (): void => settle();
        const onError = (err: Error): void => settle(err);
        const onClose = (): void => settle(dest.errored);
        dest.on('drain', onDrain).on('error', onError).on('close', onClose);
      });
    const reader = res.body.getReader();
    let bytes = 0;
    try {
      for (;;) {
        let chunk: ReadableStreamReadResult<Uint8Array>;
        try {
          chunk = await waiting(reader.read());
        } catch (err) {
          const why = abort.signal.aborted ? 'no data for 15 s' : (err as Error).message;
          throw new SluiceError('download_interrupted', `the download from ${this.baseUrl} stopped before the end (${why}); run the command again`);
        }
        if (chunk.done) return bytes;
        if (dest.destroyed || dest.errored) throw unwritable(dest.errored);
        bytes += chunk.value.byteLength;
        if (!dest.write(chunk.value)) await drained();
      }
    } finally {
      // After a failure on either side, so the connection is not left open.
      abort.abort();
    }
  }

  private async request<T>(method: string, path: string, query: Record<string, string | number | undefined>, body?: unknown): Promise<T> {
    const u = new URL(this.baseUrl + path);
    for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== '') u.searchParams.set(k, String(v));
    const headers: Record<string, string> = { authorization: `Bearer ${this.token}`, accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    let res: Response;
    try {
      res = await fetch(u, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(15_000) });
    } catch (err) {
      throw new SluiceError('api_unreachable', `cannot reach the Sluice API at ${this.baseUrl} (${(err as Error).message}); is "sluice start" running?`);
    }
    const answer = (await res.json().catch(() => ({}))) as { error?: { code: string; message: string } };
    if (!res.ok) {
      throw new SluiceError(answer.error?.code ?? `http_${res.status}`, answer.error?.message ?? `the API answered ${res.status}`);
    }
    return answer as T;
  }
}
