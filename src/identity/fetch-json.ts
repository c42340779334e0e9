/** Why a fetch from an IdP failed, worded for an error message (no response bodies). */
export class FetchFailure extends Error {
  constructor(readonly reason: string, options?: { cause?: unknown }) {
    super(reason, options);
    this.name = 'FetchFailure';
  }
}

const MAX_BYTES = 512 * 1024;

/**
 * GETs a JSON document from an IdP with a deadline covering connect, headers
 * and body, a size cap, and no redirects: a key source that moves is a
 * configuration change to make on purpose, not to follow silently.
 */
export async function fetchJson(url: string, timeoutSeconds: number): Promise<unknown> {
  const ms = Math.max(1, Math.round(timeoutSeconds * 1000));
  const signal = AbortSignal.timeout(ms);
  try {
    const res = await fetch(url, { signal, redirect: 'error', headers: { accept: 'application/json' } });
    if (res.status !== 200) {
      await res.body?.cancel();
      throw new FetchFailure(`HTTP ${res.status}`);
    }
    const declared = Number(res.headers.get('content-length') ?? '0');
    if (declared > MAX_BYTES) {
      await res.body?.cancel();
      throw new FetchFailure(`response larger than ${MAX_BYTES / 1024} KiB`);
    }
    const text = await readCapped(res);
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw new FetchFailure('response is not JSON');
    }
  } catch (err) {
    if (err instanceof FetchFailure) throw err;
    if (signal.aborted) throw new FetchFailure(`no answer within ${ms / 1000} s`, { cause: err });
    throw new FetchFailure(`request failed (${networkCode(err)})`, { cause: err });
  }
}

async function readCapped(res: Response): Promise<string> {
  if (!res.body) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > MAX_BYTES) {
      await reader.cancel();
      throw new FetchFailure(`response larger than ${MAX_BYTES / 1024} KiB`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function networkCode(err: unknown): string {
  const cause = (err as { cause?: { code?: unknown } }).cause;
  if (cause && typeof cause.code === 'string') return cause.code;
  if (err instanceof TypeError && /redirect/i.test(String(err.cause ?? ''))) return 'redirect refused';
  return err instanceof Error ? err.name : 'error';
}
