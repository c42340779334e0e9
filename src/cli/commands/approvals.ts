import type { Command } from 'commander';
import type { ApprovalStatus } from '../../approvals/types.js';
import { formatDuration, parseDuration } from '../../config/duration.js';
import { SluiceError } from '../../errors.js';
import { ApiClient, type ApiOptions } from '../api-client.js';
import { apiOptions } from './audit.js';
import { printable } from '../../policy/format.js';

/** Seconds per long-poll: below the API client's own request timeout, so a quiet wait is never mistaken for a dead server. */
const POLL_SECONDS = 10;

/** Exit codes of `wait`: scripts tell a decision from running out of time. */
export const WAIT_EXIT = { approved: 0, refused: 1, timeout: 2 } as const;

type ListOptions = ApiOptions & { state?: string; kind?: string; mine?: boolean; limit?: string; json?: boolean };

function oneLine(s: string, max: number): string {
  const lines = s.trim().split('\n');
  const first = lines[0]!.replace(/\s+/g, ' ');
  if (first.length > max) return `${first.slice(0, max - 1)}…`;
  return lines.length > 1 ? `${first} …` : first;
}

function shortTime(iso: string): string {
  return iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

/** What is asked for, in a few words: the statement's first line, or the grant and how long. */
export function what(s: ApprovalStatus): string {
  const r = s.request;
  if (r.access) return `grant ${r.access.grant} for ${formatDuration(r.access.duration)}`;
  return oneLine(r.statement?.text ?? '', 60);
}

function approvalsCount(s: ApprovalStatus): string {
  const yes = s.decisions.filter((d) => d.decision === 'approve').length;
  return `${yes} of ${s.request.required} approval${s.request.required === 1 ? '' : 's'}`;
}

export function printTable(all: readonly ApprovalStatus[]): void {
  if (all.length === 0) {
    process.stdout.write('no approval requests\n');
    return;
  }
  const rows = [
    ['ID', 'KIND', 'STATE', 'RESOURCE', 'REQUESTER', 'RULE', 'CREATED', 'WHAT'],
    ...all.map((s) => [s.request.id, s.request.kind, s.state, s.request.resource, s.request.requester.subject, s.request.rule, shortTime(s.request.createdAt), what(s)]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) process.stdout.write(printable(r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')) + '\n');
}

export function printDetail(s: ApprovalStatus): void {
  const r = s.request;
  const out: string[] = [];
  const field = (name: string, value: string) => out.push(`${`${name}:`.padEnd(15)}${value}`);
  out.push(`${r.id}  ${r.kind}  ${s.state}`);
  field('resource', r.resource);
  field('rule', r.rule);
  field('approvals', approvalsCount(s).replace(/ approvals?$/, ' needed'));
  const ci = r.requester.ci ? `; ${Object.entries(r.requester.ci).map(([k, v]) => `${k}=${v}`).join(' ')}` : '';
  field('requester', `${r.requester.subject} (${r.requester.kind}${r.requester.groups.length ? `, groups ${r.requester.groups.join(',')}` : ''}${ci})`);
  field('created', shortTime(r.createdAt));
  field('expires', shortTime(r.expiresAt));
  if (s.decidedAt) field('decided', shortTime(s.decidedAt));
  if (s.validUntil) field('valid until', shortTime(s.validUntil));
  if (s.usedAt) field('used', shortTime(s.usedAt));
  if (r.justification) field('justification', r.justification);
  field('link', r.link);
  if (r.access) field('access', what(s));
  if (r.statement) {
    const st = r.statement;
    field('session', `${st.sessionId} (grant ${st.grant}, ${st.mode === 'wait' ? 'session waits' : `fail fast; approval usable for ${formatDuration(st.approvalTtl)}`})`);
    if (st.params?.length) field('params', JSON.stringify(st.params));
    if (st.rows !== undefined) field('rows', String(st.rows));
    const f = st.facts;
    field('facts', `kinds ${f.kinds.join(',') || '-'}; tables ${f.tables.join(',') || '-'}; functions ${f.functions.join(',') || '-'}${f.opaque ? '; opaque' : ''}`);
    out.push('statement:');
    for (const line of st.text.split('\n')) out.push(`  ${line}`);
  }
  out.push(s.decisions.length ? 'decisions:' : 'decisions:     none yet');
  for (const d of s.decisions) out.push(`  ${shortTime(d.time)}  ${d.decision.padEnd(7)} by ${d.by.subject}: ${d.reason}`);
  // Requesters wrote the statement and justification, approvers the reasons: none of it may steer the terminal.
  process.stdout.write(printable(out.join('\n')) + '\n');
}

function printDecided(s: ApprovalStatus, decision: 'approve' | 'deny'): void {
  process.stdout.write(`${decision === 'approve' ? 'approved' : 'denied'} ${s.request.id}: request is ${s.state} (${approvalsCount(s)})\n`);
}

/** The exit code a final state stands for; undefined while pending. */
function exitFor(s: ApprovalStatus): number | undefined {
  if (s.state === 'approved' || s.state === 'used') return WAIT_EXIT.approved;
  if (s.state === 'pending') return undefined;
  return WAIT_EXIT.refused;
}

/**
 * Long-polls until the request is decided or `seconds` pass; prints the final
 * state and sets the exit code (0 approved or used, 1 denied, cancelled or
 * expired, 2 still pending).
 */
export async function waitAndReport(api: ApiClient, id: string, seconds: number, json: boolean): Promise<void> {
  const deadline = Date.now() + seconds * 1000;
  let s = await api.get<ApprovalStatus>(`/api/v1/approvals/${encodeURIComponent(id)}`);
  while (s.state === 'pending') {
    const left = Math.ceil((deadline - Date.now()) / 1000);
    if (left <= 0) break;
    s = await api.get<ApprovalStatus>(`/api/v1/approvals/${encodeURIComponent(id)}/wait`, { timeout: Math.min(POLL_SECONDS, left) });
  }
  if (json) process.stdout.write(JSON.stringify(s, null, 2) + '\n');
  else if (s.state === 'pending') process.stdout.write(`${s.request.id}: still pending after ${formatDuration(seconds)} (${approvalsCount(s)}); see ${s.request.link}\n`);
  else {
    const last = [...s.decisions].reverse().find((d) => (s.state === 'denied' ? d.decision === 'deny' : d.decision === 'approve'));
    const by = last && (s.state === 'approved' || s.state === 'denied' || s.state === 'used') ? ` by ${last.by.subject}: ${last.reason}` : '';
    process.stdout.write(`${s.request.id}: ${s.state}${by}${s.validUntil && s.state === 'approved' ? ` (valid until ${shortTime(s.validUntil)})` : ''}\n`);
  }
  process.exitCode = exitFor(s) ?? WAIT_EXIT.timeout;
}

export function seconds(value: string, flag: string): number {
  const s = parseDuration(/^\d+$/.test(value) ? Number(value) : value);
  if (s === undefined || s <= 0) throw new SluiceError('duration_invalid', `${flag}: expected a duration such as 90s, 15m, 2h or 1d`);
  return s;
}

/** `approve <id> --reason` / `deny <id> --reason` under `base` (approvals or access-requests). */
export function decisionCommands(parent: Command, base: string): void {
  for (const decision of ['approve', 'deny'] as const) {
    const cmd = parent
      .command(`${decision} <id>`)
      .description(`${decision} a request; the reason is recorded in the audit log`)
      .requiredOption('--reason <text>', 'why (recorded and shown to the requester)')
      .option('--json', 'JSON output');
    apiOptions(cmd);
    cmd.action(async (id: string, o: ApiOptions & { reason: string; json?: boolean }) => {
      const api = await ApiClient.create(o);
      const s = await api.post<ApprovalStatus>(`${base}/${encodeURIComponent(id)}/${decision}`, { reason: o.reason });
      if (o.json) process.stdout.write(JSON.stringify(s, null, 2) + '\n');
      else printDecided(s, decision);
    });
  }
}

/** `list` under `base`, with state/mine filters (and kind where the base has several kinds). */
export function listCommand(parent: Command, base: string, withKind: boolean): void {
  const cmd = parent
    .command('list')
    .description('list the requests you may see')
    .option('--state <state>', 'pending, approved, denied, expired, cancelled or used')
    .option('--mine', 'only requests you made')
    .option('--limit <n>', 'at most this many (1 to 1000)')
    .option('--json', 'JSON output');
  if (withKind) cmd.option('--kind <kind>', 'statement or access');
  apiOptions(cmd);
  cmd.action(async (o: ListOptions) => {
    const api = await ApiClient.create(o);
    const { approvals: all } = await api.get<{ approvals: ApprovalStatus[] }>(base, { state: o.state, kind: o.kind, mine: o.mine ? 'true' : undefined, limit: o.limit });
    if (o.json) process.stdout.write(JSON.stringify(all, null, 2) + '\n');
    else printTable(all);
  });
}

export function approvalCommands(program: Command): void {
  const approvals = program.command('approvals').description('approval requests (held statements and access requests), through the Sluice API');
  listCommand(approvals, '/api/v1/approvals', true);

  const show = approvals.command('show <id>').description('one request in full: statement, facts, justification, decisions').option('--json', 'JSON output');
  apiOptions(show);
  show.action(async (id: string, o: ApiOptions & { json?: boolean }) => {
    const api = await ApiClient.create(o);
    const s = await api.get<ApprovalStatus>(`/api/v1/approvals/${encodeURIComponent(id)}`);
    if (o.json) process.stdout.write(JSON.stringify(s, null, 2) + '\n');
    else printDetail(s);
  });

  decisionCommands(approvals, '/api/v1/approvals');

  const wait = approvals
    .command('wait <id>')
    .description('wait for a decision: exit 0 approved (or used), 1 denied, cancelled or expired, 2 still pending at --timeout')
    .option('--timeout <duration>', 'how long to wait', '15m')
    .option('--json', 'JSON output');
  apiOptions(wait);
  wait.action(async (id: string, o: ApiOptions & { timeout: string; json?: boolean }) => {
    const limit = seconds(o.timeout, '--timeout');
    await waitAndReport(await ApiClient.create({ ...o, devTokenSeconds: limit + 60 }), id, limit, Boolean(o.json));
  });
}
