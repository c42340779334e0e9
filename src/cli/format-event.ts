import type { AuditEvent } from '../events/types.js';

/** One line per event for people; `--json` prints the events as JSON Lines instead. */
export function formatEvent(e: AuditEvent): string {
  const who = e.principal ? e.principal.subject : '-';
  const d = e.data as Record<string, unknown>;
  let what = '';
  switch (e.type) {
    case 'statement.started':
      what = oneLine(String(d.text ?? ''));
      if (Array.isArray(d.params) && d.params.length) what += `  params=${JSON.stringify(d.params)}`;
      break;
    case 'statement.completed':
      what = d.sqlstate ? `error ${String(d.sqlstate)}: ${String(d.error ?? '')}` : `${(d.tags as string[] | undefined)?.join(', ') ?? ''}${d.skipped ? 'skipped' : ''}`;
      what += `  (${String(d.durationMs)} ms)`;
      break;
    case 'session.opened':
      what = `grant=${String(d.grant)} policy=${String(d.policy)} from ${String(d.clientAddress)}${d.tls ? ' tls' : ' plaintext'}`;
      break;
    case 'session.closed':
      what = `${String(d.reason)} after ${String(d.durationMs)} ms, ${String(d.statements)} statements`;
      break;
    case 'statement.denied':
      what = `${String(d.rule)}: ${String(d.reason)}`;
      break;
    case 'session.refused':
      what = `${String(d.reason)}: ${String(d.message)}`;
      break;
    default:
      what = oneLine(JSON.stringify(d));
  }
  const session = e.sessionId ? e.sessionId.slice(0, 8) : '--------';
  return `${String(e.seq).padStart(6)} ${e.time} ${e.type.padEnd(19)} ${session} ${who.padEnd(12)} ${(e.resource ?? '-').padEnd(10)} ${what}`;
}

function oneLine(s: string): string {
  const flat = s.replace(/\s+/g, ' ').trim();
  return flat.length > 200 ? `${flat.slice(0, 199)}…` : flat;
}
