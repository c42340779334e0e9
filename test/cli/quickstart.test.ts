import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { freePort } from '../../src/devdb/free-port.js';
import { runClient } from '../support/clients.js';
import { testPostgres } from '../support/pg-env.js';
import { runCli, spawnCli } from './run-cli.js';

/** Waits until the quick start has printed its connection instructions. */
function instructions(child: ReturnType<typeof spawnCli>): Promise<{ token: string; url: string }> {
  return new Promise((resolveOut, reject) => {
    let out = '';
    let err = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const token = /export PGPASSWORD='([^']+)'/.exec(out)?.[1];
      const url = /psql "([^"]+)"/.exec(out)?.[1];
      if (token && url) resolveOut({ token, url });
    });
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    child.on('exit', (code) => reject(new Error(`quickstart exited ${code}: ${err}`)));
  });
}

describe.each(['postgres', 'pglite'] as const)('sluice quickstart with a %s demo database', (engine) => {
  it('prints a psql line that connects as the demo identity, and the statements show in audit tail', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-qs-'));
    chmodSync(dir, 0o755);
    const dataDir = join(dir, 'data');
    const [port, httpPort] = [await freePort(), await freePort()];
    const child = spawnCli(['quickstart', '--data-dir', dataDir, '--port', String(port), '--http-port', String(httpPort), '--demo-db', engine]);
    try {
      const { token, url } = await instructions(child);
      expect(url).toBe(`postgresql://read@127.0.0.1:${port}/demo?sslmode=require`);
      const psql = join(testPostgres().binDir, 'psql');
      const r = await runClient(psql, ['-X', '-At', url, '-c', 'select count(*) from customers /* quickstart-check */'], { PGPASSWORD: token });
      expect(r.stderr).toBe('');
      expect(r.stdout.trim()).toBe('50');
      const tail = await runCli(['audit', 'tail', '--config', join(dataDir, 'sluice.yaml')]);
      expect(tail.code).toBe(0);
      expect(tail.stdout).toContain('select count(*) from customers /* quickstart-check */');
      expect(tail.stdout).toContain('session.opened');

      // The demo holds a DROP until a demo lead approves it from the CLI.
      const config = ['--config', join(dataDir, 'sluice.yaml')];
      const lead = ['--as', 'lead', '--as-groups', 'demo-leads', ...config];
      const ddl = url.replace('//read@', '//ddl@');
      expect((await runClient(psql, ['-X', '-At', ddl, '-c', 'create table scratch (id int)'], { PGPASSWORD: token })).stderr).toBe('');
      const drop = runClient(psql, ['-X', '-At', ddl, '-c', 'drop table scratch'], { PGPASSWORD: token });
      let id: string | undefined;
      for (let i = 0; i < 200 && !id; i++) {
        const list = await runCli(['approvals', 'list', '--state', 'pending', '--json', ...lead]);
        id = (JSON.parse(list.stdout || '[]') as { request: { id: string } }[])[0]?.request.id;
        if (!id) await new Promise((r) => setTimeout(r, 100));
      }
      expect(id).toMatch(/^apr_/);
      const approved = await runCli(['approvals', 'approve', id!, '--reason', 'demo', ...lead]);
      expect(approved.code).toBe(0);
      const dropped = await drop;
      expect(dropped.stderr).toContain(`NOTICE:  sluice: statement held for approval by policy "demo-hold-drops": request ${id}`);
      expect(dropped.stdout.trim()).toBe('DROP TABLE');
    } finally {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGINT');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
