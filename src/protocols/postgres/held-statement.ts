import type { Hold } from '../../approvals/rules.js';
import type { ApprovalStatus } from '../../approvals/types.js';
import { formatDuration } from '../../config/duration.js';
import { printable, showName, showPolicy } from '../../policy/format.js';

/**
 * What becomes of a held statement: it is sent (`run`), it is refused with
 * an error in its place (`refuse`), it already ran while its rows were
 * counted (`ran`, the response already passed on), or the session is gone.
 */
export type HeldOutcome =
  | { readonly run: true }
  | { readonly ran: Buffer }
  | { readonly refuse: string; readonly sqlstate: string }
  | { readonly gone: true };

function rowsPart(status: ApprovalStatus, hold: Hold): string {
  const rows = status.request.statement?.rows;
  return rows !== undefined && hold.rule.rows_over !== undefined ? ` (it would change ${rows} rows; the limit is ${hold.rule.rows_over})` : '';
}

/** The notice a waiting client sees (psql prints it) while the request is open. */
export function holdNotice(status: ApprovalStatus, hold: Hold): string {
  const ttl = Math.max(0, Math.round((Date.parse(status.request.expiresAt) - Date.parse(status.request.createdAt)) / 1000));
  return (
    `sluice: statement held for approval by policy ${showPolicy(hold.policy)}${rowsPart(status, hold)}: request ${status.request.id}; ` +
    `waiting up to ${formatDuration(ttl)} for ${status.request.required === 1 ? 'an approver' : `${status.request.required} approvers`}: ${status.request.link}`
  );
}

/** The error a fail-fast client gets: the request to have approved, and how to run the statement afterwards. */
export function failFastRefusal(status: ApprovalStatus, hold: Hold): string {
  return (
    `sluice: statement held for approval by policy ${showPolicy(hold.policy)}${rowsPart(status, hold)}: request ${status.request.id} (${status.request.link}). ` +
    `Once it is approved, run the same statement with the same parameters again within ${formatDuration(hold.rule.approval_ttl)}; it will run once`
  );
}

/** What a waiting statement's request ended as, for the client. */
export function heldOutcome(status: ApprovalStatus): HeldOutcome {
  const id = status.request.id;
  switch (status.state) {
    case 'approved':
      return { run: true };
    case 'denied': {
      const d = status.decisions.find((x) => x.decision === 'deny');
      return { refuse: `sluice: statement denied by ${showName(d?.by.subject ?? 'an approver')}: ${plain(d?.reason ?? '')} (request ${id}); it did not run`, sqlstate: '42501' };
    }
    case 'expired':
      return { refuse: `sluice: nobody decided request ${id} in time, so the statement did not run; run it again to ask again`, sqlstate: '57014' };
    default:
      return { refuse: `sluice: request ${id} is ${status.state}, so the statement did not run`, sqlstate: '57014' };
  }
}

/** An approver's reason in one line, without control characters, as it reaches a client's terminal. */
function plain(reason: string): string {
  const one = printable(reason.replace(/[\r\n\t]+/g, ' ')).trim();
  return one.length > 300 ? `${one.slice(0, 300)}…` : one;
}
