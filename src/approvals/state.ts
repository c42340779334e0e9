import type { PrincipalRef } from '../identity/principal.js';
import type { ApprovalDecision, ApprovalRequest, ApprovalState, ApprovalStatus } from './types.js';

/** One stored row of approval_events. */
export interface ApprovalEventRow {
  readonly type: 'approve' | 'deny' | 'use' | 'cancel' | 'expire';
  readonly by?: PrincipalRef;
  readonly reason?: string;
  readonly time: string;
}

/**
 * What a request's events add up to at `now`. Pure, and the only place the
 * rules live: one denial denies; `required` distinct approvals approve; an
 * approval is good until its validity ends (the statement re-run window, or
 * the end of the access grant); nothing decided by expiresAt expires.
 */
export function foldStatus(request: ApprovalRequest, events: readonly ApprovalEventRow[], now: Date): ApprovalStatus {
  const decisions: ApprovalDecision[] = [];
  let state: ApprovalState = 'pending';
  let decidedAt: string | undefined;
  let usedAt: string | undefined;
  let ended: 'cancelled' | 'expired' | undefined;
  let approvals = 0;
  for (const e of events) {
    if (e.type === 'approve' || e.type === 'deny') {
      decisions.push({ requestId: request.id, decision: e.type, by: e.by!, reason: e.reason ?? '', time: e.time });
      if (state !== 'pending') continue;
      if (e.type === 'deny') {
        state = 'denied';
        decidedAt = e.time;
      } else if (++approvals >= request.required) {
        state = 'approved';
        decidedAt = e.time;
      }
    } else if (e.type === 'use') {
      usedAt ??= e.time;
    } else if (state === 'pending' || state === 'approved') {
      ended ??= e.type === 'cancel' ? 'cancelled' : 'expired';
    }
  }
  const validUntil = state === 'approved' && decidedAt !== undefined ? new Date(Date.parse(decidedAt) + validitySeconds(request) * 1000).toISOString() : undefined;
  if (state === 'approved' && usedAt !== undefined && request.kind === 'statement') state = 'used';
  else if (ended !== undefined && (state === 'pending' || state === 'approved')) state = ended;
  else if (state === 'pending' && now.getTime() >= Date.parse(request.expiresAt)) state = 'expired';
  else if (state === 'approved' && validUntil !== undefined && now.getTime() >= Date.parse(validUntil)) state = 'expired';
  return {
    request,
    state,
    decisions,
    ...(decidedAt !== undefined ? { decidedAt } : {}),
    ...(validUntil !== undefined ? { validUntil } : {}),
    ...(usedAt !== undefined ? { usedAt } : {}),
  };
}

function validitySeconds(r: ApprovalRequest): number {
  return r.kind === 'access' ? (r.access?.duration ?? 0) : (r.statement?.approvalTtl ?? 0);
}
