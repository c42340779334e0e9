import type { Command } from 'commander';
import type { ApprovalStatus } from '../../approvals/types.js';
import { formatDuration } from '../../config/duration.js';
import { ApiClient, type ApiOptions } from '../api-client.js';
import { apiOptions } from './audit.js';
import { decisionCommands, listCommand, seconds, waitAndReport } from './approvals.js';

const BASE = '/api/v1/access-requests';

export function accessCommands(program: Command): void {
  const access = program.command('access').description('time-boxed access requests, through the Sluice API');

  const request = access
    .command('request <resource>')
    .description('ask approvers for a grant on a resource for a while')
    .requiredOption('--grant <grant>', 'read, write, ddl or admin')
    .requiredOption('--for <duration>', 'how long, such as 30m or 2h')
    .requiredOption('--reason <text>', 'why you need it (shown to approvers and recorded)')
    .option('--wait', 'wait for the decision (exit 0 approved, 1 denied or expired, 2 still pending)')
    .option('--timeout <duration>', 'with --wait: how long to wait', '15m')
    .option('--json', 'JSON output');
  apiOptions(request);
  request.action(async (resource: string, o: ApiOptions & { grant: string; for: string; reason: string; wait?: boolean; timeout: string; json?: boolean }) => {
    const duration = seconds(o.for, '--for');
    const limit = o.wait ? seconds(o.timeout, '--timeout') : 0;
    const api = await ApiClient.create({ ...o, devTokenSeconds: limit + 60 });
    const s = await api.post<ApprovalStatus>(BASE, { resource, grant: o.grant, duration, reason: o.reason });
    if (o.json && !o.wait) process.stdout.write(JSON.stringify(s, null, 2) + '\n');
    else if (!o.json) {
      process.stdout.write(`requested grant ${s.request.access!.grant} on ${s.request.resource} for ${formatDuration(s.request.access!.duration)}: ${s.request.id} (${s.state})\n`);
      process.stdout.write(`approvers decide at ${s.request.link}, or: sluice approvals approve ${s.request.id} --reason <text>\n`);
    }
    if (o.wait) await waitAndReport(api, s.request.id, limit, Boolean(o.json));
  });

  listCommand(access, BASE, false);
  decisionCommands(access, BASE);
}
