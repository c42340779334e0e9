import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { GrantName, PolicyConfig } from '../config/schema.js';
import type { EventPipeline } from '../events/pipeline.js';
import type { AuditEventInput } from '../events/types.js';
import { principalRef, type Principal, type PrincipalRef } from '../identity/principal.js';
import type { Logger } from '../observability/log.js';
import type { GatewayMetrics } from '../observability/metrics.js';
import { ApprovalError } from './errors.js';
import { accessRuleFor, accessStillAllowed, mayDecide, maySee, requesterOf, statementHash, type Hold } from './rules.js';
import { ApprovalConflict, type SqliteApprovalStore } from './sqlite-approval-store.js';
import type { ApprovalEventRow } from './state.js';
import type { ApprovalKind, ApprovalRequest, ApprovalState, ApprovalStatus, StatementDetails } from './types.js';

export interface ApprovalServiceDeps {
  readonly store: SqliteApprovalStore;
  readonly events: EventPipeline;
  readonly policies: () => readonly PolicyConfig[];
  /** Base URL for links: server.public_url or the HTTP listener. */
  readonly baseUrl: () => string;
  readonly log: Logger;
  readonly notifier?: ApprovalNotifier;
  /** Key of the statement binding hash (derived from Sluice's root secret). */
  readonly hashKey: Buffer;
  /** Tells whether an approval:read permission lets this principal see every request. */
  readonly seesAll?: (p: Principal) => boolean;
  readonly metrics?: Pick<GatewayMetrics, 'approvalRequests' | 'approvalDecisions'>;
}

/** Tells approvers (webhooks, Slack); never throws, never blocks the caller. */
export interface ApprovalNotifier {
  notify(type: 'approval.requested' | 'approval.decided', status: ApprovalStatus): void;
}

export interface StatementHoldInput {
  readonly principal: Principal;
  readonly resource: string;
  readonly hold: Hold;
  readonly sessionId: string;
  readonly grant: GrantName;
  /** The statement as the audit log records it (password literals redacted): what approvers see. */
  readonly text: string;
  /** The statement exactly as sent and the digest of its parameter bytes: what the approval is bound to. */
  readonly exact: StatementIdentity;
  readonly params?: readonly (string | null)[];
  readonly facts: StatementDetails['facts'];
  readonly rows?: number;
  readonly justification?: string;
}

/** The exact statement an approval is bound to. */
export interface StatementIdentity {
  readonly text: string;
  readonly paramsDigest?: string;
}

export interface AccessRequestInput {
  readonly resource: string;
  readonly grant: GrantName;
  readonly seconds: number;
  readonly reason: string;
}

/** A time-boxed grant that is approved and not yet over. */
export interface ActiveAccess {
  readonly requestId: string;
  readonly policy: string;
  readonly grant: GrantName;
  readonly until: Date;
}

const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';
function newId(): string {
  const b = randomBytes(20);
  let s = 'apr_';
  for (let i = 0; i < 20; i++) s += BASE32[b[i]! & 31];
  return s;
}

/**
 * Approval requests from creation to use: the store holds the state, the
 * audit log the history (approval.requested, approval.decided, approval.used,
 * approval.cancelled, approval.expired, each naming the request id), and
 * waiting sessions learn of decisions from an in-process signal backed by a
 * poll of the store, so a decision written by another process is seen too.
 */
export class ApprovalService {
  private readonly changed = new EventEmitter();
  private readonly expiryTimers = new Map<string, NodeJS.Timeout>();

  constructor(private readonly deps: ApprovalServiceDeps) {
    this.changed.setMaxListeners(0);
  }

  /** A new statement request, durable in the store and the audit log before it is returned. */
  async requestStatement(input: StatementHoldInput): Promise<ApprovalStatus> {
    const now = new Date();
    const requester = requesterOf(input.principal);
    const id = newId();
    const request: ApprovalRequest = {
      id,
      kind: 'statement',
      rule: input.hold.policy,
      requester,
      resource: input.resource,
      createdAt: now.toISOString(),
      expiresAt: new Date(now.getTime() + input.hold.rule.request_ttl * 1000).toISOString(),
      required: input.hold.rule.required,
      ...(input.justification ? { justification: input.justification.slice(0, 1000) } : {}),
      link: this.link(id),
      statement: {
        sessionId: input.sessionId,
        grant: input.grant,
        text: input.text,
        ...(input.params ? { params: input.params } : {}),
        hash: statementHash(this.deps.hashKey, requester, input.resource, input.exact.text, input.exact.paramsDigest),
        mode: input.hold.rule.mode,
        facts: input.facts,
        ...(input.rows !== undefined ? { rows: input.rows } : {}),
        approvalTtl: input.hold.rule.approval_ttl,
      },
    };
    return this.create(request, input.sessionId);
  }

  /** A time-boxed grant request by `principal`, checked against the access rules in force. */
  async requestAccess(principal: Principal, input: AccessRequestInput): Promise<ApprovalStatus> {
    if (!Number.isFinite(input.seconds) || input.seconds <= 0) throw new ApprovalError('duration_invalid', 400, 'ask for a duration above zero, such as 30m or 2h');
    if (!input.reason.trim()) throw new ApprovalError('reason_missing', 400, 'say why you need the access (--reason)');
    const found = accessRuleFor(this.deps.policies(), principal, input.resource, input.grant, input.seconds);
    if (!found.ok) throw new ApprovalError(found.code, found.code === 'no_access_rule' ? 403 : 400, found.message);
    const now = new Date();
    const id = newId();
    return this.create({
      id,
      kind: 'access',
      rule: found.policy,
      requester: requesterOf(principal),
      resource: input.resource,
      createdAt: now.toISOString(),
      expiresAt: new Date(now.getTime() + found.rule.request_ttl * 1000).toISOString(),
      required: found.rule.required,
      justification: input.reason.slice(0, 1000),
      link: this.link(id),
      access: { grant: input.grant, duration: Math.floor(input.seconds) },
    });
  }

  /** The newest still-pending fail-fast request for this exact statement, so a re-run before the decision does not open another. */
  pendingFor(principal: Principal, resource: string, exact: StatementIdentity): ApprovalStatus | undefined {
    const hash = statementHash(this.deps.hashKey, principal, resource, exact.text, exact.paramsDigest);
    return this.deps.store.byHash(hash, principalRef(principal)).find((s) => s.state === 'pending' && s.request.resource === resource && s.request.statement?.mode === 'fail_fast');
  }

  /**
   * Uses an approval of this exact statement, once: true when one was
   * approved, unused and still valid, and its use is now durable. Two
   * sessions racing get one true between them (a unique index decides).
   */
  async useApproved(principal: Principal, resource: string, exact: StatementIdentity, sessionId: string): Promise<ApprovalStatus | undefined> {
    const hash = statementHash(this.deps.hashKey, principal, resource, exact.text, exact.paramsDigest);
    for (const s of this.deps.store.byHash(hash, principalRef(principal))) {
      // A wait-mode approval belongs to the session that waited for it, never to a re-run.
      if (s.state !== 'approved' || s.request.resource !== resource || s.request.statement?.mode !== 'fail_fast') continue;
      const used = await this.use(s.request.id, sessionId);
      if (used) return used;
    }
    return undefined;
  }

  /** Marks an approved statement request used; undefined when it was not approved, already used or expired. */
  async use(id: string, sessionId: string): Promise<ApprovalStatus | undefined> {
    let after: ApprovalStatus;
    try {
      after = this.deps.store.append(id, { type: 'use', time: new Date().toISOString() }, (s) => {
        if (s.state !== 'approved') throw new ApprovalConflict(s.state);
      });
    } catch (err) {
      if (err instanceof ApprovalConflict) return undefined;
      throw err;
    }
    await this.record(after.request, 'approval.used', { sessionId }, sessionId);
    this.watchDeadline(after);
    this.changed.emit(id);
    return after;
  }

  /** The waiting session went away: its statement must never run later. */
  async cancel(id: string, reason: string): Promise<void> {
    try {
      const after = this.deps.store.append(id, { type: 'cancel', reason, time: new Date().toISOString() }, (s) => {
        if (s.state !== 'pending' && s.state !== 'approved') throw new ApprovalConflict(s.state);
      });
      await this.record(after.request, 'approval.cancelled', { reason });
      this.watchDeadline(after);
      this.deps.notifier?.notify('approval.decided', after);
      this.changed.emit(id);
    } catch (err) {
      if (!(err instanceof ApprovalConflict)) throw err;
    }
  }

  /** Records that a request ran out of time (once), so the audit log shows it. */
  async expire(id: string): Promise<void> {
    try {
      const after = this.deps.store.append(id, { type: 'expire', time: new Date().toISOString() }, (s) => {
        if (s.state !== 'expired') throw new ApprovalConflict(s.state);
      });
      await this.record(after.request, 'approval.expired', after.request.kind === 'access' && after.validUntil ? { endedAt: after.validUntil } : {});
      this.watchDeadline(after);
      this.deps.notifier?.notify('approval.decided', after);
      this.changed.emit(id);
    } catch (err) {
      if (!(err instanceof ApprovalConflict)) throw err;
    }
  }

  /**
   * One approver's decision. Refused for an unknown request (404), a
   * requester deciding their own (403), a non-approver (403), a request no
   * longer pending (409) and a replayed vote (409).
   */
  async decide(id: string, principal: Principal, decision: 'approve' | 'deny', reason: string): Promise<ApprovalStatus> {
    if (!reason.trim()) throw new ApprovalError('reason_missing', 400, 'a decision needs a reason (--reason)');
    const current = this.deps.store.get(id);
    if (!current) throw new ApprovalError('approval_not_found', 404, `no approval request ${id}`);
    const may = mayDecide(this.deps.policies(), current.request, principal);
    if (!may.ok) throw new ApprovalError(may.code, 403, may.message);
    const by = principalRef(principal);
    const event: ApprovalEventRow = { type: decision, by, reason: reason.slice(0, 1000), time: new Date().toISOString() };
    let after: ApprovalStatus;
    try {
      after = this.deps.store.append(id, event, (s) => {
        if (s.decisions.some((d) => d.by.issuer === by.issuer && d.by.subject === by.subject)) throw new ApprovalConflict('replayed');
        if (s.state !== 'pending') throw new ApprovalError('approval_not_pending', 409, `request ${id} is ${s.state}; only pending requests can be decided`);
      });
    } catch (err) {
      if (err instanceof ApprovalConflict) throw new ApprovalError('decision_replayed', 409, `${by.subject} already decided request ${id}; a decision counts once`);
      throw err;
    }
    this.deps.metrics?.approvalDecisions.labels(decision).inc();
    await this.record(after.request, 'approval.decided', { decision, by, reason: event.reason, state: after.state, ...(after.validUntil ? { validUntil: after.validUntil } : {}) });
    if (after.state !== 'pending') this.deps.notifier?.notify('approval.decided', after);
    this.watchDeadline(after);
    this.changed.emit(id);
    return after;
  }

  /** Resolves once the request is no longer pending (or the signal aborts: then with its current status). */
  waitFor(id: string, signal?: AbortSignal): Promise<ApprovalStatus> {
    return new Promise((resolve, reject) => {
      let poll: NodeJS.Timeout | undefined;
      let deadline: NodeJS.Timeout | undefined;
      const done = (s: ApprovalStatus) => {
        stop();
        resolve(s);
      };
      const stop = () => {
        clearInterval(poll);
        clearTimeout(deadline);
        this.changed.off(id, check);
        signal?.removeEventListener('abort', aborted);
      };
      const current = (): ApprovalStatus | undefined => {
        try {
          const s = this.deps.store.get(id);
          if (s) return s;
          stop();
          reject(new ApprovalError('approval_not_found', 404, `no approval request ${id}`));
        } catch (err) {
          stop();
          reject(err);
        }
        return undefined;
      };
      const check = () => {
        const s = current();
        if (s && s.state !== 'pending') done(s);
      };
      const aborted = () => {
        const s = current();
        if (s) done(s);
      };
      const first = this.deps.store.get(id);
      if (!first) {
        reject(new ApprovalError('approval_not_found', 404, `no approval request ${id}`));
        return;
      }
      if (first.state !== 'pending') return resolve(first);
      if (signal?.aborted) return resolve(first);
      this.changed.on(id, check);
      signal?.addEventListener('abort', aborted);
      // Another process sharing the store decides without this signal.
      poll = setInterval(check, 1000);
      poll.unref();
      deadline = setTimeout(check, Math.max(0, Date.parse(first.request.expiresAt) - Date.now()) + 5);
      deadline.unref();
    });
  }

  /** How many callers wait on this request right now (sessions and API long-polls). */
  waiters(id: string): number {
    return this.changed.listenerCount(id);
  }

  get(id: string, principal: Principal): ApprovalStatus {
    const s = this.deps.store.get(id);
    if (!s || !this.visible(s, principal)) throw new ApprovalError('approval_not_found', 404, `no approval request ${id} that you may see`);
    return s;
  }

  list(principal: Principal, filter: { kind?: ApprovalKind; state?: ApprovalState; mine?: boolean; limit?: number } = {}): ApprovalStatus[] {
    const all = this.deps.store.list({ kind: filter.kind, limit: 1000, ...(filter.state === 'pending' ? { open: true } : {}), ...(filter.mine ? { requester: principalRef(principal) } : {}) });
    return all
      .filter((s) => (filter.state === undefined || s.state === filter.state) && this.visible(s, principal))
      .slice(0, Math.min(Math.max(filter.limit ?? 100, 1), 1000));
  }

  /** Approved, unexpired access grants of this principal on this resource, under rules that still exist and still match. */
  activeAccess(principal: Principal, resource: string, now = new Date()): ActiveAccess[] {
    const policies = this.deps.policies();
    return this.deps.store
      .list({ kind: 'access', requester: principalRef(principal), limit: 1000 }, now)
      .filter((s) => s.state === 'approved' && s.request.resource === resource && s.validUntil !== undefined && accessStillAllowed(policies, principal, s.request))
      .map((s) => ({ requestId: s.request.id, policy: s.request.rule, grant: s.request.access!.grant, until: new Date(s.validUntil!) }));
  }

  /** Records that a session opened with a time-boxed grant. */
  async accessUsed(grant: ActiveAccess, sessionId: string, principal: PrincipalRef, resource: string): Promise<void> {
    await this.deps.events.record([
      { type: 'approval.used', time: new Date().toISOString(), sessionId, principal, resource, data: { id: grant.requestId, kind: 'access', rule: grant.policy, grant: grant.grant, until: grant.until.toISOString() } },
    ]);
  }

  /**
   * After a restart: a waiting session's request cannot be released any more
   * (its connection is gone), so pending wait-mode requests are cancelled;
   * approved access grants get their expiry event scheduled again.
   */
  async recover(): Promise<void> {
    for (const s of this.deps.store.unfinished()) {
      if (s.request.statement?.mode === 'wait' && (s.state === 'pending' || s.state === 'approved')) await this.cancel(s.request.id, 'Sluice restarted while the session waited');
      else if (s.state === 'expired') await this.expire(s.request.id);
      else this.watchDeadline(s);
    }
  }

  close(): void {
    for (const t of this.expiryTimers.values()) clearTimeout(t);
    this.expiryTimers.clear();
  }

  private visible(s: ApprovalStatus, principal: Principal): boolean {
    return maySee(this.deps.policies(), s.request, principal) || (this.deps.seesAll?.(principal) ?? false);
  }

  /**
   * Records approval.expired when the request's next deadline passes: the
   * end of the decision window while pending, the end of the approval's
   * validity (a re-run window, or a grant) once approved. Nothing to watch
   * once it is denied, used, cancelled or expired.
   */
  private watchDeadline(s: ApprovalStatus): void {
    const id = s.request.id;
    clearTimeout(this.expiryTimers.get(id));
    this.expiryTimers.delete(id);
    const at = s.state === 'pending' ? s.request.expiresAt : s.state === 'approved' ? s.validUntil : undefined;
    if (at === undefined) return;
    const t = setTimeout(() => {
      this.expiryTimers.delete(id);
      const now = this.deps.store.get(id);
      if (now?.state === 'expired') void this.expire(id).catch((err) => this.deps.log.error({ id, err: String(err) }, 'could not record the expiry of an approval request'));
      else if (now) this.watchDeadline(now);
    }, Math.min(Math.max(0, Date.parse(at) - Date.now()) + 10, 2 ** 31 - 1));
    t.unref();
    this.expiryTimers.set(id, t);
  }

  private async create(request: ApprovalRequest, sessionId?: string): Promise<ApprovalStatus> {
    this.deps.store.add(request);
    this.deps.metrics?.approvalRequests.labels(request.kind, request.resource).inc();
    await this.record(request, 'approval.requested', { request }, sessionId);
    const status = this.deps.store.get(request.id)!;
    this.deps.notifier?.notify('approval.requested', status);
    this.watchDeadline(status);
    return status;
  }

  private record(request: ApprovalRequest, type: AuditEventInput['type'], data: Record<string, unknown>, sessionId?: string): Promise<unknown> {
    const { request: full, ...rest } = data as { request?: ApprovalRequest };
    return this.deps.events.record([
      {
        type,
        time: new Date().toISOString(),
        ...(sessionId ? { sessionId } : {}),
        principal: { issuer: request.requester.issuer, subject: request.requester.subject, kind: request.requester.kind },
        resource: request.resource,
        data: { id: request.id, kind: request.kind, rule: request.rule, ...(full ? { request: full } : {}), ...rest },
      },
    ]);
  }

  private link(id: string): string {
    return `${this.deps.baseUrl()}/approvals/${id}`;
  }
}
