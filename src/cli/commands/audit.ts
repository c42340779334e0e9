import { dirname, join, resolve } from 'node:path';
import { finished } from 'node:stream/promises';
import { createWriteStream, renameSync, rmSync } from 'node:fs';
import type { Command } from 'commander';
import { verifyAuditStore, type VerifyReport } from '../../audit/verify.js';
import { readJwksFile, trustedKeys } from '../../audit/verify-keys.js';
import { loadConfigFile } from '../../config/load.js';
import { ConfigError, SluiceError } from '../../errors.js';
import type { AuditEvent } from '../../events/types.js';
import { ApiClient, type ApiOptions } from '../api-client.js';
import { findConfigFile } from '../config-file.js';
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
    .description('search the audit log');
  filterOptions(search)
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

  const verify = audit
    .command('verify')
    .description('check the audit log for edited, deleted, reordered or rewritten events, offline (exit 0 intact, 1 tampered, 2 usage error)')
    .option('--store <path>', 'the store file (default: store.path of the config); its keys are read from keys/ next to it unless --config says otherwise')
    .option('--config <file>', 'sluice.yaml: the store, the keys, the export file')
    .option('--checkpoints <file>', 'checkpoint export file (default: store.checkpoints.export.file of the config)')
    .option('--jwks <file>', 'trust these public keys (saved from /.well-known/jwks.json) instead of the configured keys')
    .option('--json', 'print the report as JSON')
    // Usage errors exit 2, so a script can tell them from a tampered log (1).
    .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2));
  verify.action(async (o: VerifyOptions) => {
    let report: VerifyReport;
    try {
      report = await runVerify(o);
    } catch (err) {
      // main formats a ConfigError itself, and exits 2 for it too.
      if (!(err instanceof SluiceError) || err instanceof ConfigError) throw err;
      process.stderr.write(`sluice: ${err.message} [${err.code}]\n`);
      process.exitCode = 2;
      return;
    }
    process.stdout.write(o.json ? JSON.stringify(report, null, 2) + '\n' : describeReport(report));
    process.exitCode = report.ok ? 0 : 1;
  });
  exportCommand(audit);
}

interface VerifyOptions {
  store?: string;
  config?: string;
  checkpoints?: string;
  jwks?: string;
  json?: boolean;
}

async function runVerify(o: VerifyOptions): Promise<VerifyReport> {
  const config = o.store !== undefined && o.config === undefined ? undefined : loadConfigFile(findConfigFile(o.config)).config;
  const storePath = resolve(o.store ?? config?.store.path ?? join(config?.store.data_dir ?? '.', 'sluice.db'));
  const exportFile = o.checkpoints ?? config?.store.checkpoints.export.file;
  const jwks = o.jwks !== undefined ? readJwksFile(o.jwks) : await trustedKeys(config?.keys ?? { previous: [] }, config?.store.data_dir ?? dirname(storePath));
  if (jwks.keys.length === 0) {
    throw new SluiceError('verify_no_keys', 'no public key to check checkpoints with: pass --config (keys of the gateway) or --jwks <file> (saved from /.well-known/jwks.json)');
  }
  return verifyAuditStore({ storePath, jwks, exportFiles: exportFile !== undefined ? [exportFile] : [] });
}

function describeReport(r: VerifyReport): string {
  const lines: string[] = [];
  for (const f of r.findings) lines.push(`TAMPERED ${f.kind}: ${f.message}`);
  for (const c of r.chains) {
    lines.push(c.intact ? `chain "${c.chain}": ${c.verified} events intact, head ${c.lastSeq} ${c.headHash.slice(0, 16)}…` : `chain "${c.chain}": broken after event ${c.verified} (last event ${c.lastSeq})`);
  }
  const cp = r.checkpoints;
  lines.push(`checkpoints: ${cp.matched} of ${cp.store + cp.exported} signed and matching (${cp.store} in the store, ${cp.exported} exported)`);
  lines.push(r.ok ? 'OK: the audit log is intact' : `TAMPERED: ${r.findings.length} finding${r.findings.length === 1 ? '' : 's'}`);
  return lines.join('\n') + '\n';
}

/** The filters search and export share, named as the API's query parameters are. */
function filterOptions(cmd: Command): Command {
  return cmd
    .option('--subject <subject>', 'principal subject')
    .option('--resource <name>', 'resource name')
    .option('--session <id>', 'session id')
    .option('--type <types>', 'comma-separated event types')
    .option('--since <time>', 'ISO-8601 time')
    .option('--until <time>', 'ISO-8601 time')
    .option('-q, --text <text>', 'text inside the event (statement text, reasons)');
}

function exportCommand(audit: Command): void {
  const cmd = audit
    .command('export')
    .description('download every matching audit event as JSON Lines or CSV (spreadsheet-safe)')
    .requiredOption('--format <format>', 'jsonl or csv');
  filterOptions(cmd)
    .option('--out <file>', 'write to this file (mode 0600) instead of standard output');
  apiOptions(cmd);
  cmd.action(
    async (o: ApiOptions & { format: string; subject?: string; resource?: string; session?: string; type?: string; since?: string; until?: string; text?: string; out?: string }) => {
      const api = await ApiClient.create(o);
      const query = { format: o.format, subject: o.subject, resource: o.resource, session_id: o.session, type: o.type, since: o.since, until: o.until, q: o.text };
      if (o.out === undefined) {
        await api.download('/api/v1/audit/export', query, process.stdout);
        return;
      }
      // A failed export leaves no file behind that could pass for a complete one.
      const partial = `${o.out}.partial-${process.pid}`;
      const file = createWriteStream(partial, { flags: 'wx', mode: 0o600 });
      // finished() listens for 'error' from now on; the download itself reports a failed write.
      const written = finished(file);
      written.catch(() => undefined);
      try {
        await api.download('/api/v1/audit/export', query, file);
        file.end();
        await written;
        renameSync(partial, o.out);
      } catch (err) {
        file.destroy();
        rmSync(partial, { force: true });
        throw err;
      }
    },
  );
}

export { apiOptions };
