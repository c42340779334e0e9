import type { ApprovalNotification } from './payload.js';

/**
 * A Slack incoming-webhook message (Block Kit). `text` is the fallback shown
 * in notifications and by Slack-compatible receivers that ignore blocks, so it
 * carries the link too.
 */
export interface SlackMessage {
  readonly text: string;
  readonly blocks: readonly SlackBlock[];
}

export interface SlackText {
  readonly type: 'plain_text' | 'mrkdwn';
  readonly text: string;
}

export type SlackBlock =
  | { readonly type: 'header'; readonly text: SlackText }
  | { readonly type: 'section'; readonly text?: SlackText; readonly fields?: readonly SlackText[] }
  | { readonly type: 'context'; readonly elements: readonly SlackText[] }
  | {
      readonly type: 'actions';
      readonly elements: readonly { readonly type: 'button'; readonly action_id: string; readonly text: SlackText; readonly url: string; readonly style?: 'primary' }[];
    };

/** Characters of statement text shown in the code block, truncation note included (a section holds 3000). */
export const SLACK_STATEMENT_LIMIT = 2900;
const HEADER_LIMIT = 150;
const FIELD_LIMIT = 1900;
const CONTEXT_LIMIT = 1900;
const TRUNCATED = '\n… (truncated: open the request for the full text)';

/** Slack's mrkdwn escapes: without them a requester could write <!channel> or a disguised link. */
function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** Cuts by code point, so a surrogate pair is never split. */
function cut(s: string, limit: number, suffix = '…'): string {
  const chars = Array.from(s);
  if (chars.length <= limit) return s;
  return chars.slice(0, Math.max(0, limit - Array.from(suffix).length)).join('') + suffix;
}

/** Escapes, then cuts to `limit` characters without splitting an entity. */
function escCut(s: string, limit: number, suffix = '…'): string {
  const room = limit - Array.from(suffix).length;
  let out = '';
  let length = 0;
  const chars = Array.from(s);
  for (let i = 0; i < chars.length; i++) {
    const e = esc(chars[i]);
    const len = Array.from(e).length;
    if (length + len > room) {
      // What is left might still fit whole without the suffix.
      const rest = esc(chars.slice(i).join(''));
      return length + Array.from(rest).length <= limit ? out + rest : out + suffix;
    }
    out += e;
    length += len;
  }
  return out;
}

/** Inside a code block nothing can be escaped: a zero-width space keeps three backticks from closing it. */
function codeSafe(s: string): string {
  return s.replace(/``(?=`)/g, '``\u200b');
}

function statementBlock(text: string): string {
  const safe = codeSafe(text);
  return `*Statement*\n\`\`\`\n${escCut(safe, SLACK_STATEMENT_LIMIT, TRUNCATED)}\n\`\`\``;
}

function duration(seconds: number): string {
  const d = Math.floor(seconds / 86400);
  const h = Math.floor((seconds % 86400) / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = Math.round(seconds % 60);
  const parts = [d && `${d}d`, h && `${h}h`, m && `${m}m`, s && `${s}s`].filter(Boolean);
  return parts.length ? parts.join(' ') : '0s';
}

function what(p: ApprovalNotification): string {
  if (p.kind === 'access' && p.access) return `${p.access.grant} access for ${duration(p.access.duration)}`;
  return 'a statement';
}

function field(label: string, value: string): SlackText {
  return { type: 'mrkdwn', text: `*${label}*\n${escCut(value, FIELD_LIMIT)}` };
}

export function slackMessage(p: ApprovalNotification): SlackMessage {
  const who = p.requester.subject;
  const headline =
    p.type === 'approval.requested'
      ? `Approval requested: ${what(p)} on ${p.resource}`
      : `Approval ${p.state}: ${what(p)} on ${p.resource}`;
  const summary =
    p.type === 'approval.requested'
      ? `${who} asks for ${what(p)} on ${p.resource} (rule ${p.rule})`
      : `The request by ${who} for ${what(p)} on ${p.resource} is ${p.state} (rule ${p.rule})`;

  const requester = `${p.requester.subject}${p.requester.kind === 'machine' ? ' (machine)' : ''}\n${p.requester.issuer}`;
  const fields: SlackText[] = [field('Resource', p.resource), field('Requester', requester), field('Rule', p.rule), field('State', p.state)];
  const grant = p.statement?.grant ?? p.access?.grant;
  if (grant) fields.push(field('Grant', grant));
  if (p.statement?.rows !== undefined) fields.push(field('Rows', String(p.statement.rows)));
  if (p.access) fields.push(field('Duration', duration(p.access.duration)));
  if (p.type === 'approval.requested') fields.push(field('Expires', p.expiresAt));
  if (p.requester.ci && Object.keys(p.requester.ci).length > 0) {
    fields.push(field('CI', Object.entries(p.requester.ci).map(([k, v]) => `${k}: ${v}`).join('\n')));
  }

  const blocks: SlackBlock[] = [
    { type: 'header', text: { type: 'plain_text', text: cut(headline, HEADER_LIMIT) } },
    { type: 'section', fields: fields.slice(0, 10) },
  ];
  if (p.statement) {
    blocks.push({ type: 'section', text: { type: 'mrkdwn', text: statementBlock(p.statement.text) } });
    const f = p.statement.facts;
    const facts = [
      f.kinds.length ? `kinds: ${f.kinds.join(', ')}` : '',
      f.tables.length ? `tables: ${f.tables.join(', ')}` : '',
      f.functions.length ? `functions: ${f.functions.join(', ')}` : '',
      f.opaque ? 'opaque: Sluice cannot see everything this statement does' : '',
      `mode: ${p.statement.mode}`,
    ].filter(Boolean);
    blocks.push({ type: 'context', elements: [{ type: 'mrkdwn', text: escCut(facts.join(' · '), CONTEXT_LIMIT) }] });
  }
  if (p.justification !== undefined && p.justification !== '') {
    blocks.push({ type: 'section', text: { type: 'mrkdwn', text: `*Justification*\n${escCut(p.justification, SLACK_STATEMENT_LIMIT)}` } });
  }
  if (p.decisions.length > 0) {
    blocks.push({
      type: 'context',
      // A context block holds at most 10 elements; the link shows every decision.
      elements: p.decisions.slice(0, 10).map((d) => ({
        type: 'mrkdwn' as const,
        text: escCut(`${d.decision === 'approve' ? 'approved' : 'denied'} by ${d.by.subject}${d.reason ? `: ${d.reason}` : ''}`, 300),
      })),
    });
  }
  blocks.push({
    type: 'actions',
    elements: [
      {
        type: 'button',
        action_id: 'sluice_open_request',
        text: { type: 'plain_text', text: p.type === 'approval.requested' ? 'Review request' : 'Open request' },
        url: p.link,
        ...(p.type === 'approval.requested' ? { style: 'primary' as const } : {}),
      },
    ],
  });
  return { text: `${escCut(summary, 2000)}: ${esc(p.link)}`, blocks };
}
