import type { Command } from 'commander';
import type { SessionSummary } from '../../sessions/session.js';
import { ApiClient, type ApiOptions } from '../api-client.js';
import { apiOptions } from './audit.js';

export function sessionCommands(program: Command): void {
  const sessions = program.command('sessions').description('live sessions, through the Sluice API');
  const list = sessions.command('list').description('list live sessions').option('--json', 'JSON output');
  apiOptions(list);
  list.action(async (o: ApiOptions & { json?: boolean }) => {
    const api = await ApiClient.create(o);
    const { sessions: all } = await api.get<{ sessions: SessionSummary[] }>('/api/v1/sessions');
    if (o.json) {
      process.stdout.write(JSON.stringify(all, null, 2) + '\n');
      return;
    }
    for (const s of all) {
      process.stdout.write(`${s.id}  ${s.principal.subject.padEnd(16)} ${s.resource.padEnd(12)} ${s.grant.padEnd(6)} since ${s.openedAt}  ${s.statements} statements\n`);
    }
  });
  const kill = sessions.command('terminate <id>').description('end a live session');
  apiOptions(kill);
  kill.action(async (id: string, o: ApiOptions) => {
    const api = await ApiClient.create(o);
    await api.delete(`/api/v1/sessions/${encodeURIComponent(id)}`);
    process.stdout.write(`terminated ${id}\n`);
  });
}
