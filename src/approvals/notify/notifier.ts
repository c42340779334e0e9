import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { NotificationsConfig } from '../../config/schema.js';
import { resolveSecret } from '../../config/secrets.js';
import { SluiceError } from '../../errors.js';
import type { Logger } from '../../observability/log.js';
import type { ApprovalNotifier } from '../service.js';
import type { ApprovalStatus } from '../types.js';
import type { NotificationMetrics } from './metrics.js';
import { notificationPayload, type NotificationType } from './payload.js';
import { signWebhook } from './signature.js';
import { slackMessage } from './slack.js';

export interface NotifierDeps {
  readonly log: Logger;
  readonly metrics?: NotificationMetrics;
  readonly fetch?: typeof fetch;
  /** First retry waits up to this long (full jitter); default 1000. */
  readonly baseDelayMs?: number;
  /** No wait between attempts is longer, Retry-After included; default 60000. */
  readonly maxDelayMs?: number;
}

interface Target {
  readonly channel: 'webhook' | 'slack';
  readonly name: string;
  /** For Slack the URL is the credential: it is never logged, and errors never quote it. */
  readonly url: string;
  readonly secret?: string;
}

interface AttemptResult {
  readonly ok: boolean;
  readonly retry: boolean;
  /** HTTP status, or timeout / a network error code / closed. */
  readonly status: number | string;
  /** A short excerpt of a refusing response body (Slack puts its error code there). */
  readonly response?: string;
  readonly retryAfterMs?: number;
}

const RESPONSE_EXCERPT = 200;

function httpUrl(value: string, path: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new SluiceError('notification_url_invalid', `${path}: the referenced value is not a URL; set it to the http(s) address of the webhook`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new SluiceError('notification_url_invalid', `${path}: expected an http or https URL`);
  }
  return url;
}

function isLoopback(url: URL): boolean {
  return url.hostname === 'localhost' || url.hostname === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(url.hostname);
}

function retryAfterMs(value: string | null, now: number): number | undefined {
  if (value === null) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const date = Date.parse(v);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

function networkStatus(err: unknown): string {
  const code = (err as { cause?: { code?: unknown } })?.cause?.code;
  return typeof code === 'string' && /^[A-Z0-9_]{1,40}$/.test(code) ? code : 'network';
}

async function excerpt(res: Response): Promise<string | undefined> {
  if (!res.body) return undefined;
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let text = '';
  try {
    while (text.length < RESPONSE_EXCERPT) {
      const { done, value } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
  } catch {
    // The excerpt only decorates the log line; a body that fails to arrive changes nothing.
  } finally {
    await reader.cancel().catch(() => undefined);
  }
  const clean = text.replace(/[^\x20-\x7e]+/g, ' ').trim().slice(0, RESPONSE_EXCERPT);
  return clean || undefined;
}

/**
 * Tells approvers of approval requests and decisions through signed JSON
 * webhooks and Slack incoming webhooks. Delivery is at-least-once per target:
 * every target gets its own delivery id, kept across retries so a receiver can
 * drop duplicates. Nothing here blocks or fails the approval itself.
 */
export class Notifier implements ApprovalNotifier {
  private readonly targets: readonly Target[];
  private readonly maxAttempts: number;
  private readonly timeoutMs: number;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly fetch: typeof fetch;
  private readonly log: Logger;
  private readonly metrics?: NotificationMetrics;
  private readonly inflight = new Set<Promise<void>>();
  private readonly stopped = new AbortController();

  /** Resolves every secret now, so a missing one stops start or reload rather than a later notification. */
  constructor(cfg: NotificationsConfig, deps: NotifierDeps) {
    this.log = deps.log;
    this.metrics = deps.metrics;
    this.fetch = deps.fetch ?? globalThis.fetch;
    this.maxAttempts = cfg.max_attempts;
    this.timeoutMs = Math.max(1, Math.round(cfg.timeout * 1000));
    this.baseDelayMs = deps.baseDelayMs ?? 1000;
    this.maxDelayMs = deps.maxDelayMs ?? 60_000;
    const targets: Target[] = [];
    cfg.webhooks.forEach((w, i) => {
      const url = httpUrl(w.url, `server.notifications.webhooks[${i}].url`);
      const path = `server.notifications.webhooks[${i}].secret`;
      const secret = resolveSecret(w.secret, path);
      if (secret.length === 0) throw new SluiceError('notification_secret_empty', `${path}: the secret is empty; set a random value of 32 or more characters`);
      if (url.protocol === 'http:' && !isLoopback(url)) {
        this.log.warn({ target: w.name, channel: 'webhook' }, 'notification webhook uses plain http: approval details cross the network unencrypted');
      }
      targets.push({ channel: 'webhook', name: w.name, url: url.href, secret });
    });
    cfg.slack.forEach((s, i) => {
      const url = httpUrl(resolveSecret(s.url, `server.notifications.slack[${i}].url`), `server.notifications.slack[${i}].url`);
      if (url.protocol === 'http:' && !isLoopback(url)) {
        this.log.warn({ target: s.name, channel: 'slack' }, 'Slack webhook URL uses plain http: the URL, which is its credential, crosses the network unencrypted');
      }
      targets.push({ channel: 'slack', name: s.name, url: url.href });
    });
    this.targets = targets;
  }

  notify(type: NotificationType, status: ApprovalStatus): void {
    let requestId: unknown;
    try {
      requestId = status?.request?.id;
      if (this.targets.length === 0) return;
      if (this.stopped.signal.aborted) {
        this.log.warn({ event: type, requestId }, 'approval notification not sent: the notifier is closed');
        return;
      }
      const payload = notificationPayload(type, status, new Date());
      const json = JSON.stringify(payload);
      let slackJson: string | undefined;
      for (const target of this.targets) {
        const body = target.channel === 'webhook' ? json : (slackJson ??= JSON.stringify(slackMessage(payload)));
        const p = this.deliver(target, type, String(requestId), body).catch((err: unknown) => {
          this.log.error({ target: target.name, channel: target.channel, event: type, requestId, err: (err as Error)?.name }, 'approval notification failed unexpectedly');
        });
        this.inflight.add(p);
        void p.finally(() => this.inflight.delete(p));
      }
    } catch (err) {
      this.log.error({ event: type, requestId, err: (err as Error)?.message }, 'approval notification could not be built; approvers were not told');
      for (const t of this.targets) this.metrics?.deliveries.inc({ target: t.name, channel: t.channel, event: type, outcome: 'unbuildable' });
    }
  }

  /** Resolves once every delivery under way has finished (delivered, refused, given up or abandoned). */
  async idle(): Promise<void> {
    while (this.inflight.size > 0) await Promise.all([...this.inflight]);
  }

  /** Stops accepting notifications and abandons retries and attempts under way; `idle()` then resolves promptly. */
  close(): void {
    this.stopped.abort();
  }

  private async deliver(target: Target, event: NotificationType, requestId: string, body: string): Promise<void> {
    const delivery = randomUUID();
    const fields = { target: target.name, channel: target.channel, event, requestId, delivery };
    const labels = { target: target.name, channel: target.channel, event };
    for (let attempt = 1; ; attempt++) {
      const r = await this.attempt(target, event, delivery, body);
      if (r.ok) {
        this.metrics?.deliveries.inc({ ...labels, outcome: 'delivered' });
        this.log.debug({ ...fields, attempt }, 'approval notification delivered');
        return;
      }
      if (this.stopped.signal.aborted) return this.abandoned(fields, labels, attempt);
      this.metrics?.failedAttempts.inc({ target: target.name, channel: target.channel, reason: typeof r.status === 'number' ? `http_${r.status}` : r.status === 'timeout' ? 'timeout' : 'network' });
      if (!r.retry) {
        this.metrics?.deliveries.inc({ ...labels, outcome: 'rejected' });
        this.log.error(
          { ...fields, attempt, status: r.status, ...(r.response ? { response: r.response } : {}) },
          'approval notification refused by its target and not retried; check the target configuration',
        );
        return;
      }
      if (attempt >= this.maxAttempts) {
        this.metrics?.deliveries.inc({ ...labels, outcome: 'exhausted' });
        this.log.error({ ...fields, attempts: attempt, status: r.status }, 'approval notification given up after max_attempts; approvers of this request were not told through this target');
        return;
      }
      const wait =
        r.retryAfterMs !== undefined
          ? Math.min(r.retryAfterMs, this.maxDelayMs)
          : Math.random() * Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** (attempt - 1));
      this.log.warn({ ...fields, attempt, status: r.status, retryInMs: Math.round(wait) }, 'approval notification attempt failed; retrying');
      try {
        await sleep(wait, undefined, { signal: this.stopped.signal });
      } catch {
        return this.abandoned(fields, labels, attempt);
      }
    }
  }

  private abandoned(fields: Record<string, string>, labels: Record<string, string>, attempts: number): void {
    this.metrics?.deliveries.inc({ ...labels, outcome: 'abandoned' });
    this.log.warn({ ...fields, attempts }, 'approval notification abandoned: the notifier closed before it was delivered');
  }

  private async attempt(target: Target, event: NotificationType, delivery: string, body: string): Promise<AttemptResult> {
    const headers: Record<string, string> = { 'content-type': 'application/json', 'user-agent': 'Sluice-Notifier' };
    if (target.secret !== undefined) {
      // Signed per attempt: a retry long after the first try must still be inside the receiver's tolerance window.
      headers['x-sluice-signature'] = signWebhook(target.secret, body, Math.floor(Date.now() / 1000));
      headers['x-sluice-event'] = event;
      headers['x-sluice-delivery'] = delivery;
    }
    const timeout = AbortSignal.timeout(this.timeoutMs);
    const signal = AbortSignal.any([this.stopped.signal, timeout]);
    let res: Response;
    try {
      // Redirects are not followed: the signed body or the Slack credential would go wherever the target points.
      res = await this.fetch(target.url, { method: 'POST', headers, body, redirect: 'manual', signal });
    } catch (err) {
      if (this.stopped.signal.aborted) return { ok: false, retry: false, status: 'closed' };
      return { ok: false, retry: true, status: timeout.aborted ? 'timeout' : networkStatus(err) };
    }
    const status = res.status;
    if (status >= 200 && status < 300) {
      await res.body?.cancel().catch(() => undefined);
      return { ok: true, retry: false, status };
    }
    const response = await excerpt(res);
    if (status === 429 || status >= 500) {
      return { ok: false, retry: true, status, response, retryAfterMs: retryAfterMs(res.headers.get('retry-after'), Date.now()) };
    }
    return { ok: false, retry: false, status, response };
  }
}
