import { createHmac, randomBytes } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import fc from 'fast-check';
import { Registry } from 'prom-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { NotificationMetrics } from '../../src/approvals/notify/metrics.js';
import { Notifier } from '../../src/approvals/notify/notifier.js';
import { MAX_STATEMENT_CHARS, notificationPayload } from '../../src/approvals/notify/payload.js';
import { signWebhook, verifyWebhookSignature } from '../../src/approvals/notify/signature.js';
import { SLACK_STATEMENT_LIMIT, slackMessage, type SlackBlock } from '../../src/approvals/notify/slack.js';
import type { ApprovalStatus } from '../../src/approvals/types.js';
import type { NotificationsConfig } from '../../src/config/schema.js';
import { SluiceError } from '../../src/errors.js';
import { createLogger } from '../../src/observability/log.js';

interface Received {
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

interface Reply {
  readonly status: number;
  readonly headers?: Record<string, string>;
  readonly body?: string;
  /** Never answer: the client's timeout has to end the attempt. */
  readonly hang?: boolean;
}

/** A real HTTP receiver on loopback answering with scripted replies, then 200. */
class Receiver {
  readonly received: Received[] = [];
  private readonly replies: Reply[] = [];
  private readonly server: Server;
  port = 0;

  constructor() {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        this.received.push({ path: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
        const reply = this.replies.shift() ?? { status: 200, body: 'ok' };
        if (reply.hang) return;
        res.writeHead(reply.status, reply.headers);
        res.end(reply.body ?? '');
      });
    });
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
  }

  reply(...replies: Reply[]): void {
    this.replies.push(...replies);
  }

  url(path: string): string {
    return `http://127.0.0.1:${this.port}${path}`;
  }

  reset(): void {
    this.received.length = 0;
    this.replies.length = 0;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

const WEBHOOK_SECRET = `whsec-${randomBytes(24).toString('hex')}`;
const SLACK_PATH = `/services/T0001/B0002/${randomBytes(16).toString('hex')}`;
const receiver = new Receiver();
const logs: string[] = [];
const sink = new Writable({
  write(chunk, _enc, cb) {
    logs.push(String(chunk));
    cb();
  },
});
const log = createLogger('trace', sink);
const notifiers: Notifier[] = [];

beforeAll(async () => {
  await receiver.start();
  process.env.SLUICE_TEST_NOTIFY_SECRET = WEBHOOK_SECRET;
  process.env.SLUICE_TEST_NOTIFY_SLACK = receiver.url(SLACK_PATH);
});
afterEach(async () => {
  for (const n of notifiers.splice(0)) {
    n.close();
    await n.idle();
  }
  receiver.reset();
});
afterAll(async () => {
  await receiver.stop();
  delete process.env.SLUICE_TEST_NOTIFY_SECRET;
  delete process.env.SLUICE_TEST_NOTIFY_SLACK;
});

function config(over: Partial<NotificationsConfig> = {}): NotificationsConfig {
  return {
    webhooks: [{ name: 'audit-hook', url: receiver.url('/hook'), secret: '${env:SLUICE_TEST_NOTIFY_SECRET}' }],
    slack: [],
    max_attempts: 6,
    timeout: 5,
    ...over,
  };
}

function notifier(cfg: NotificationsConfig, metrics?: NotificationMetrics): Notifier {
  const n = new Notifier(cfg, { log, metrics, baseDelayMs: 1, maxDelayMs: 20 });
  notifiers.push(n);
  return n;
}

function status(over: { text?: string; state?: ApprovalStatus['state'] } = {}): ApprovalStatus {
  return {
    request: {
      id: 'apr_abcdefghijklmnopqrst',
      kind: 'statement',
      rule: 'prod-writes',
      requester: {
        issuer: 'https://idp.example.com',
        subject: 'alice@example.com',
        kind: 'person',
        groups: ['dba', 'secret-group'],
        ci: { repository: 'acme/app', workflow: 'deploy' },
      },
      resource: 'prod-db',
      createdAt: '2025-01-01T10:00:00.000Z',
      expiresAt: '2025-01-01T10:15:00.000Z',
      required: 1,
      justification: 'fix <!channel> order 42 & more',
      link: 'https://sluice.example.com/approvals/apr_abcdefghijklmnopqrst',
      statement: {
        sessionId: 'ses_internal',
        grant: 'write',
        text: over.text ?? "UPDATE orders SET state = 'paid' WHERE id = $1",
        params: ['42'],
        hash: 'internal-hash',
        mode: 'wait',
        facts: { kinds: ['update'], tables: ['public.orders'], functions: [], opaque: false },
        rows: 1,
        approvalTtl: 300,
      },
    },
    state: over.state ?? 'pending',
    decisions:
      over.state === 'approved'
        ? [{ requestId: 'apr_abcdefghijklmnopqrst', decision: 'approve', by: { issuer: 'https://idp.example.com', subject: 'bob@example.com', kind: 'person' }, reason: 'looks fine', time: '2025-01-01T10:02:00.000Z' }]
        : [],
  };
}

function counter(registry: Registry, name: string, labels: Record<string, string>): Promise<number> {
  return registry
    .getSingleMetric(name)!
    .get()
    .then((m) => m.values.filter((v) => Object.entries(labels).every(([k, want]) => v.labels[k] === want)).reduce((a, v) => a + v.value, 0));
}

function logRecords(): Record<string, unknown>[] {
  return logs.join('').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('webhook delivery', () => {
  it('posts the payload signed with HMAC-SHA256 over "<t>.<body>"', async () => {
    const n = notifier(config());
    n.notify('approval.requested', status());
    await n.idle();
    expect(receiver.received).toHaveLength(1);
    const [req] = receiver.received;
    expect(req.path).toBe('/hook');
    expect(req.headers['content-type']).toBe('application/json');
    expect(req.headers['x-sluice-event']).toBe('approval.requested');
    expect(req.headers['x-sluice-delivery']).toMatch(/^[0-9a-f-]{36}$/);
    const header = String(req.headers['x-sluice-signature']);
    expect(verifyWebhookSignature(WEBHOOK_SECRET, req.body, header, Math.floor(Date.now() / 1000))).toBe(true);
    expect(verifyWebhookSignature('another-secret', req.body, header, Math.floor(Date.now() / 1000))).toBe(false);

    const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header);
    expect(m).not.toBeNull();
    const independent = createHmac('sha256', WEBHOOK_SECRET).update(`${m![1]}.${req.body}`).digest('hex');
    expect(m![2]).toBe(independent);

    const body = JSON.parse(req.body);
    expect(body).toEqual({
      type: 'approval.requested',
      id: 'apr_abcdefghijklmnopqrst',
      kind: 'statement',
      state: 'pending',
      rule: 'prod-writes',
      resource: 'prod-db',
      requester: { issuer: 'https://idp.example.com', subject: 'alice@example.com', kind: 'person', ci: { repository: 'acme/app', workflow: 'deploy' } },
      justification: 'fix <!channel> order 42 & more',
      link: 'https://sluice.example.com/approvals/apr_abcdefghijklmnopqrst',
      createdAt: '2025-01-01T10:00:00.000Z',
      expiresAt: '2025-01-01T10:15:00.000Z',
      required: 1,
      statement: {
        text: "UPDATE orders SET state = 'paid' WHERE id = $1",
        params: ['42'],
        rows: 1,
        mode: 'wait',
        facts: { kinds: ['update'], tables: ['public.orders'], functions: [], opaque: false },
        grant: 'write',
      },
      decisions: [],
      time: body.time,
    });
    expect(Number.isNaN(Date.parse(body.time))).toBe(false);
    // Internal fields of the status never leave Sluice.
    expect(req.body).not.toContain('internal-hash');
    expect(req.body).not.toContain('ses_internal');
    expect(req.body).not.toContain('secret-group');
  });

  it('cuts a huge statement and says so; an approved request carries how long the approval is good for', async () => {
    const huge = status({ state: 'approved' });
    const long = { ...huge, validUntil: '2025-01-01T11:00:00.000Z', request: { ...huge.request, statement: { ...huge.request.statement!, text: 'INSERT INTO t VALUES ' + '(1),'.repeat(40_000) } } };
    const p = notificationPayload('approval.decided', long, new Date());
    expect(p.statement!.text).toHaveLength(MAX_STATEMENT_CHARS);
    expect(p.statement!.textTruncated).toBe(true);
    expect(p.validUntil).toBe('2025-01-01T11:00:00.000Z');
    expect(notificationPayload('approval.requested', status(), new Date()).statement!.textTruncated).toBeUndefined();
  });

  it('retries 500, 503 and 429 (Retry-After honoured) with one delivery id, then succeeds', async () => {
    const registry = new Registry();
    const metrics = new NotificationMetrics(registry);
    const n = notifier(config(), metrics);
    receiver.reply({ status: 500 }, { status: 503 }, { status: 429, headers: { 'retry-after': '0' } });
    n.notify('approval.decided', status({ state: 'approved' }));
    await n.idle();
    expect(receiver.received).toHaveLength(4);
    const ids = new Set(receiver.received.map((r) => r.headers['x-sluice-delivery']));
    expect(ids.size).toBe(1);
    for (const r of receiver.received) {
      expect(r.headers['x-sluice-event']).toBe('approval.decided');
      expect(r.body).toBe(receiver.received[0].body);
      expect(verifyWebhookSignature(WEBHOOK_SECRET, r.body, String(r.headers['x-sluice-signature']), Math.floor(Date.now() / 1000))).toBe(true);
    }
    const decided = JSON.parse(receiver.received[3].body);
    expect(decided.state).toBe('approved');
    expect(decided.decisions).toEqual([{ decision: 'approve', by: { issuer: 'https://idp.example.com', subject: 'bob@example.com' }, reason: 'looks fine', time: '2025-01-01T10:02:00.000Z' }]);
    expect(await counter(registry, 'sluice_notification_deliveries_total', { target: 'audit-hook', outcome: 'delivered' })).toBe(1);
    expect(await counter(registry, 'sluice_notification_failed_attempts_total', { target: 'audit-hook' })).toBe(3);
    expect(await counter(registry, 'sluice_notification_failed_attempts_total', { reason: 'http_429' })).toBe(1);
  });

  it('gives up after max_attempts, logs the target, event, request and status, and counts it', async () => {
    const registry = new Registry();
    const metrics = new NotificationMetrics(registry);
    const n = notifier(config({ max_attempts: 3 }), metrics);
    receiver.reply({ status: 503 }, { status: 503 }, { status: 503 }, { status: 503 });
    logs.length = 0;
    n.notify('approval.requested', status());
    await n.idle();
    expect(receiver.received).toHaveLength(3);
    expect(await counter(registry, 'sluice_notification_deliveries_total', { target: 'audit-hook', event: 'approval.requested', outcome: 'exhausted' })).toBe(1);
    const errors = logRecords().filter((r) => r.level === 50);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ target: 'audit-hook', event: 'approval.requested', requestId: 'apr_abcdefghijklmnopqrst', status: 503, attempts: 3 });
  });

  it('does not retry a 400', async () => {
    const registry = new Registry();
    const metrics = new NotificationMetrics(registry);
    const n = notifier(config(), metrics);
    receiver.reply({ status: 400, body: 'bad payload' });
    logs.length = 0;
    n.notify('approval.requested', status());
    await n.idle();
    expect(receiver.received).toHaveLength(1);
    expect(await counter(registry, 'sluice_notification_deliveries_total', { outcome: 'rejected' })).toBe(1);
    expect(logRecords().find((r) => r.level === 50)).toMatchObject({ target: 'audit-hook', status: 400, response: 'bad payload' });
  });

  it('does not follow redirects', async () => {
    const n = notifier(config());
    receiver.reply({ status: 307, headers: { location: receiver.url('/elsewhere') } });
    n.notify('approval.requested', status());
    await n.idle();
    expect(receiver.received.map((r) => r.path)).toEqual(['/hook']);
  });

  it('retries an attempt that times out', async () => {
    const n = notifier(config({ timeout: 0.2, max_attempts: 2 }));
    receiver.reply({ status: 0, hang: true });
    n.notify('approval.requested', status());
    await n.idle();
    expect(receiver.received).toHaveLength(2);
    expect(receiver.received[0].headers['x-sluice-delivery']).toBe(receiver.received[1].headers['x-sluice-delivery']);
  });

  it('retries network errors and gives up on an unreachable target', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const registry = new Registry();
    const metrics = new NotificationMetrics(registry);
    const n = notifier(config({ max_attempts: 3, webhooks: [{ name: 'gone', url: `http://127.0.0.1:${port}/hook`, secret: '${env:SLUICE_TEST_NOTIFY_SECRET}' }] }), metrics);
    n.notify('approval.requested', status());
    await n.idle();
    expect(await counter(registry, 'sluice_notification_failed_attempts_total', { target: 'gone', reason: 'network' })).toBe(3);
    expect(await counter(registry, 'sluice_notification_deliveries_total', { target: 'gone', outcome: 'exhausted' })).toBe(1);
  });

  it('gives every target its own delivery and never throws from notify', async () => {
    const n = notifier(config({ slack: [{ name: 'team', url: '${env:SLUICE_TEST_NOTIFY_SLACK}' }] }));
    const bad = status();
    const unserialisable = { ...bad, request: { ...bad.request, statement: { ...bad.request.statement!, rows: 1n as unknown as number } } };
    expect(() => n.notify('approval.requested', unserialisable)).not.toThrow();
    expect(() => n.notify('approval.requested', undefined as unknown as ApprovalStatus)).not.toThrow();
    n.notify('approval.requested', status());
    await n.idle();
    expect(receiver.received.map((r) => r.path).sort()).toEqual(['/hook', SLACK_PATH].sort());
  });

  it('close() abandons pending retries and stops new notifications', async () => {
    const registry = new Registry();
    const metrics = new NotificationMetrics(registry);
    const n = new Notifier(config(), { log, metrics, baseDelayMs: 600_000, maxDelayMs: 600_000 });
    receiver.reply({ status: 503, headers: { 'retry-after': '600' } });
    n.notify('approval.requested', status());
    while (receiver.received.length === 0) await new Promise((r) => setTimeout(r, 5));
    n.close();
    await n.idle();
    n.notify('approval.requested', status());
    await n.idle();
    expect(receiver.received).toHaveLength(1);
    expect(await counter(registry, 'sluice_notification_deliveries_total', { outcome: 'abandoned' })).toBe(1);
  });
});

describe('configuration', () => {
  it('resolves secrets at construction and names the key of a missing one', () => {
    let caught: unknown;
    try {
      new Notifier(config({ webhooks: [{ name: 'h', url: receiver.url('/hook'), secret: '${env:SLUICE_TEST_NOTIFY_UNSET}' }] }), { log });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(SluiceError);
    expect((caught as SluiceError).code).toBe('secret_missing');
    expect((caught as SluiceError).message).toContain('server.notifications.webhooks[0].secret');
  });

  it('refuses a Slack reference that is not an http(s) URL without quoting it', () => {
    process.env.SLUICE_TEST_NOTIFY_NOT_URL = 'xoxb-not-a-url-0123456789';
    try {
      expect(() => new Notifier(config({ slack: [{ name: 's', url: '${env:SLUICE_TEST_NOTIFY_NOT_URL}' }] }), { log })).toThrow(
        expect.objectContaining({ code: 'notification_url_invalid', message: expect.not.stringContaining('xoxb') }),
      );
    } finally {
      delete process.env.SLUICE_TEST_NOTIFY_NOT_URL;
    }
  });
});

function sectionTexts(blocks: readonly SlackBlock[]): string[] {
  return blocks.flatMap((b) => (b.type === 'section' ? [b.text?.text ?? '', ...(b.fields ?? []).map((f) => f.text)] : []));
}

describe('Slack delivery', () => {
  it('posts text and blocks with the link, resource, requester, rule, statement, rows and justification', async () => {
    const n = notifier(config({ webhooks: [], slack: [{ name: 'team', url: '${env:SLUICE_TEST_NOTIFY_SLACK}' }] }));
    n.notify('approval.requested', status());
    await n.idle();
    expect(receiver.received).toHaveLength(1);
    const [req] = receiver.received;
    expect(req.path).toBe(SLACK_PATH);
    expect(req.headers['x-sluice-signature']).toBeUndefined();
    const msg = JSON.parse(req.body) as { text: string; blocks: SlackBlock[] };
    expect(msg.text).toContain('https://sluice.example.com/approvals/apr_abcdefghijklmnopqrst');
    expect(msg.text).toContain('alice@example.com');
    expect(msg.blocks[0]).toMatchObject({ type: 'header', text: { type: 'plain_text' } });
    const actions = msg.blocks.find((b) => b.type === 'actions');
    expect(actions).toMatchObject({ elements: [{ type: 'button', url: 'https://sluice.example.com/approvals/apr_abcdefghijklmnopqrst' }] });
    const texts = sectionTexts(msg.blocks).join('\n');
    for (const s of ['prod-db', 'alice@example.com', 'prod-writes', '*Rows*\n1', "```\nUPDATE orders SET state = 'paid' WHERE id = $1\n```", 'fix &lt;!channel&gt; order 42 &amp; more']) {
      expect(texts).toContain(s);
    }
    expect(texts).not.toContain('<!channel>');
  });

  it('truncates a long statement to the code-block limit and keeps the block closed', () => {
    const long = `SELECT ${'a<b & `'.repeat(3000)}`;
    const msg = slackMessage(notificationPayload('approval.requested', status({ text: long }), new Date()));
    const statement = sectionTexts(msg.blocks).find((t) => t.startsWith('*Statement*'))!;
    const code = /^\*Statement\*\n```\n([\s\S]*)\n```$/.exec(statement)![1];
    expect(Array.from(code).length).toBeLessThanOrEqual(SLACK_STATEMENT_LIMIT);
    expect(code).toContain('truncated');
    expect(code).not.toContain('```');
    expect(code).not.toMatch(/&(?!amp;|lt;|gt;)/);
    for (const b of msg.blocks) {
      if (b.type === 'section' && b.text) expect(b.text.text.length).toBeLessThanOrEqual(3000);
      if (b.type === 'header') expect(b.text.text.length).toBeLessThanOrEqual(150);
    }
  });

  it('describes a decision and a time-boxed access request', () => {
    const base = status({ state: 'approved' });
    const access: ApprovalStatus = { ...base, request: { ...base.request, kind: 'access', statement: undefined, access: { grant: 'admin', duration: 5400 } } };
    const msg = slackMessage(notificationPayload('approval.decided', access, new Date()));
    expect(msg.blocks[0]).toMatchObject({ type: 'header', text: { text: 'Approval approved: admin access for 1h 30m on prod-db' } });
    expect(JSON.stringify(msg.blocks)).toContain('approved by bob@example.com: looks fine');
    expect(msg.blocks.some((b) => sectionTexts([b]).some((t) => t.startsWith('*Statement*')))).toBe(false);
  });
});

describe('secrets stay out of logs', () => {
  it('never logs the webhook secret or the Slack URL, whatever happens', async () => {
    logs.length = 0;
    const n = notifier(config({ max_attempts: 2, slack: [{ name: 'team', url: '${env:SLUICE_TEST_NOTIFY_SLACK}' }] }));
    receiver.reply({ status: 500 }, { status: 500 }, { status: 400, body: 'invalid_payload' }, { status: 404, body: 'no_service' });
    n.notify('approval.requested', status());
    n.notify('approval.decided', status({ state: 'approved' }));
    await n.idle();
    const text = logs.join('');
    expect(logRecords().some((r) => r.level === 50)).toBe(true);
    expect(text).not.toContain(WEBHOOK_SECRET);
    expect(text).not.toContain(SLACK_PATH);
    expect(text).not.toContain(SLACK_PATH.split('/').pop());
  });
});

describe('signature', () => {
  const secret = fc.string({ minLength: 1, maxLength: 64 });
  const body = fc.string({ maxLength: 512, unit: 'grapheme' });
  const timestamp = fc.integer({ min: 0, max: 4_000_000_000 });

  it('verifies what it signed within the tolerance, in both directions', () => {
    fc.assert(
      fc.property(secret, body, timestamp, fc.integer({ min: -300, max: 300 }), (s, b, t, skew) => {
        expect(verifyWebhookSignature(s, b, signWebhook(s, b, t), t + skew)).toBe(true);
      }),
    );
  });

  it('respects the tolerance window exactly', () => {
    fc.assert(
      fc.property(secret, body, timestamp, fc.integer({ min: -10_000, max: 10_000 }), fc.integer({ min: 0, max: 3600 }), (s, b, t, skew, tolerance) => {
        expect(verifyWebhookSignature(s, b, signWebhook(s, b, t), t + skew, tolerance)).toBe(Math.abs(skew) <= tolerance);
      }),
    );
  });

  it('fails when the body changes', () => {
    fc.assert(
      fc.property(secret, body, body, timestamp, (s, b, other, t) => {
        fc.pre(b !== other);
        expect(verifyWebhookSignature(s, other, signWebhook(s, b, t), t)).toBe(false);
      }),
    );
  });

  it('fails when the timestamp changes, even inside the window', () => {
    fc.assert(
      fc.property(secret, body, timestamp, fc.integer({ min: -300, max: 300 }), (s, b, t, delta) => {
        fc.pre(delta !== 0 && t + delta >= 0);
        const header = signWebhook(s, b, t).replace(/^t=\d+/, `t=${t + delta}`);
        expect(verifyWebhookSignature(s, b, header, t)).toBe(false);
      }),
    );
  });

  it('fails when any character of the header is changed, inserted or removed', () => {
    const edit = fc.oneof(
      fc.record({ op: fc.constant('replace' as const), at: fc.nat(), ch: fc.string({ minLength: 1, maxLength: 1 }) }),
      fc.record({ op: fc.constant('insert' as const), at: fc.nat(), ch: fc.string({ minLength: 1, maxLength: 1 }) }),
      fc.record({ op: fc.constant('delete' as const), at: fc.nat(), ch: fc.constant('') }),
    );
    fc.assert(
      fc.property(secret, body, timestamp, edit, (s, b, t, e) => {
        const header = signWebhook(s, b, t);
        const at = e.at % (header.length + (e.op === 'insert' ? 1 : 0));
        const edited =
          e.op === 'replace'
            ? header.slice(0, at) + e.ch + header.slice(at + 1)
            : e.op === 'insert'
              ? header.slice(0, at) + e.ch + header.slice(at)
              : header.slice(0, at) + header.slice(at + 1);
        fc.pre(edited !== header);
        expect(verifyWebhookSignature(s, b, edited, t)).toBe(false);
      }),
      { numRuns: 500 },
    );
  });

  it('fails under another secret', () => {
    fc.assert(
      fc.property(secret, secret, body, timestamp, (s, other, b, t) => {
        fc.pre(s !== other);
        expect(verifyWebhookSignature(other, b, signWebhook(s, b, t), t)).toBe(false);
      }),
    );
  });

  it('never throws on arbitrary headers and accepts none of them', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), (h) => {
        expect(verifyWebhookSignature('secret', 'body', h, 1_700_000_000)).toBe(false);
      }),
    );
  });

  it('accepts any of several v1 entries, for secret rotation', () => {
    const t = 1_700_000_000;
    const oldSig = signWebhook('old-secret', 'payload', t).split(',')[1];
    const newSig = signWebhook('new-secret', 'payload', t).split(',')[1];
    const header = `t=${t},${oldSig},${newSig}`;
    expect(verifyWebhookSignature('old-secret', 'payload', header, t)).toBe(true);
    expect(verifyWebhookSignature('new-secret', 'payload', header, t)).toBe(true);
    expect(verifyWebhookSignature('third-secret', 'payload', header, t)).toBe(false);
  });

  it('refuses malformed headers', () => {
    const t = 1_700_000_000;
    const good = signWebhook('s3cret', 'payload', t);
    const sig = good.split(',')[1];
    for (const h of [
      '',
      `t=${t}`,
      sig,
      `t=${t},t=${t},${sig}`,
      `t=0${t},${sig}`,
      `t=-${t},${sig}`,
      `t=${t}.5,${sig}`,
      `t=${t}, ${sig}`,
      `t=${t},${sig.toUpperCase().replace('V1', 'v1')}`,
      `t=${t},${sig},`,
      `t=${t},${sig},v1=`,
      `t=${t},${sig},v1=abc`,
      `${good},${'x=1,'.repeat(2000)}`,
    ]) {
      expect(verifyWebhookSignature('s3cret', 'payload', h, t)).toBe(false);
    }
    expect(verifyWebhookSignature('s3cret', 'payload', `${good},v2=future-scheme`, t)).toBe(true);
    expect(verifyWebhookSignature('', 'payload', good, t)).toBe(false);
    expect(() => signWebhook('', 'payload', t)).toThrow(SluiceError);
    expect(() => signWebhook('s3cret', 'payload', 1.5)).toThrow(SluiceError);
  });
});
