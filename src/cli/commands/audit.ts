import type { Command } from 'commander';
import type { AuditEvent } from '../../events/types.js';
import { ApiClient, type ApiOptions } from '../api-client.js';
import { formatEvent } from '../format-event.js';

interface Page {
  events: AuditEvent[];
}

function apiOptions(cmd: Command): void {
  cmd
    .option('--config <file>', 'sluice.yaml (for the API URL and the development issuer)')
    .option('--url <url>', 'Sluice API base URL (default: from the config)')
    .option('--token <token>', 'identity token (default: $SLUICE_TOKEN)')
    .option('--as <subject>', 'development issuer only: mint a token for this subject (default: demo)')
    .option('--as-groups <list>', 'development issuer only: comma-separated groups for --as', (v: string) => v.split(','));
}

function print(events: AuditEvent[], json: boolean): void {
  for (const e of events) process.stdout.write((json ? JSON.stringify(e) : formatEvent(e)) + '\n');
}

export function auditCommands(program: Command): void {
  const audit = program.command('audit').description('read the audit log through the Sluice API');

  const tail = audit
    .command('tail')
    .description('print the latest audit events; --follow keeps printing new ones')
    .option('-n, --lines <n>', 'how many recent events', '20')
    .option('-f, --follow', 'keep polling for new events')
    .option('--type <types>', 'comma-separated event types')
    .option('--json', 'JSON Lines output');
  apiOptions(tail);
  tail.action(async (o: ApiOptions & { lines: string; follow?: boolean; type?: string; json?: boolean }) => {
    const api = await ApiClient.create(o);
    const first = await api.get<Page>('/api/v1/audit/events', { order: 'desc', limit: Number(o.lines), type: o.type });
    const events = first.events.reverse();
    print(events, Boolean(o.json));
    let after = events.length ? events[events.length - 1].seq : 0;
    if (!events.length && o.follow) {
      const latest = await api.get<Page>('/api/v1/audit/events', { order: 'desc', limit: 1 });
      after = latest.events[0]?.seq ?? 0;
    }
    while (o.follow) {
      await new Promise((r) => setTimeout(r, 1000));
      const page = await api.get<Page>('/api/v1/audit/events', { after_seq: after, limit: 1000, type: o.type });
      print(page.events, Boolean(o.json));
      if (page.events.length) after = page.events[page.events.length - 1].seq;
    }
  });

  const search = audit
    .command('search')
    .description('search the audit log')
    .option('--subject <subject>', 'principal subject')
    .option('--resource <name>', 'resource name')
    .option('--session <id>', 'session id')
    .option('--type <types>', 'comma-separated event types')
    .option('--since <time>', 'ISO-8601 time')
    .option('--until <time>', 'ISO-8601 time')
    .option('-q, --text <text>', 'text inside the event (statement text, reasons)')
    .option('--limit <n>', 'most events to print', '100')
    .option('--json', 'JSON Lines output');
  apiOptions(search);
  search.action(
    async (o: ApiOptions & { subject?: string; resource?: string; session?: string; type?: string; since?: string; until?: string; text?: string; limit: string; json?: boolean }) => {
      const api = await ApiClient.create(o);
      const page = await api.get<Page>('/api/v1/audit/events', {
        subject: o.subject,
        resource: o.resource,
        session_id: o.session,
        type: o.type,
        since: o.since,
        until: o.until,
        q: o.text,
        limit: o.limit,
      });
      print(page.events, Boolean(o.json));
    },
  );
}

export { apiOptions };
