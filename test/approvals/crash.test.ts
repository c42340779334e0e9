import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApprovalService } from '../../src/approvals/service.js';
import { SqliteApprovalStore } from '../../src/approvals/sqlite-approval-store.js';
import { SqliteAuditStore } from '../../src/audit/sqlite-audit-store.js';
import { loadConfigFile } from '../../src/config/load.js';
import { EventPipeline } from '../../src/events/pipeline.js';
import type { Principal } from '../../src/identity/principal.js';
import { Keyring } from '../../src/keys/keyring.js';
import { createLogger } from '../../src/observability/log.js';
import { buildState, devIssuerFor } from '../../src/runtime/build-state.js';
import { baseConfig } from '../support/gateway.js';
import { testPostgres } from '../support/pg-env.js';

const fixture = fileURLToPath(new URL('./fixtures/gateway-until-killed.ts', import.meta.url));
const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

let dir: string;
let configFile: string;
let admin: pg.Client;
const pgEnv = testPostgres();

beforeAll(async () => {
  process.env.SLUICE_TEST_READER_PW = pgEnv.roles.reader.password;
  process.env.SLUICE_TEST_WRITER_PW = pgEnv.roles.writer.password;
  process.env.SLUICE_TEST_MIGRATOR_PW = pgEnv.roles.migrator.password;
  dir = mkdtempSync(join(tmpdir(), 'sluice-approval-crash-'));
  const cfg = baseConfig(pgEnv, dir) as Record<string, any>;
  cfg.policies.push(
    { name: 'ci', when: { kind: 'machine', groups: ['ci'] }, resources: ['orders'], grants: ['write'] },
    { name: 'ci-holds', when: { kind: 'machine', groups: ['ci'] }, resources: ['orders'], approval: { statements: { kinds: ['insert'] }, mode: 'fail_fast', approvers: [{ groups: ['dba'] }] } },
  );
  configFile = join(dir, 'sluice.yaml');
  writeFileSync(configFile, stringify(cfg));
  admin = new pg.Client({ host: pgEnv.host, port: pgEnv.port, user: pgEnv.roles.migrator.user, password: pgEnv.roles.migrator.password, database: pgEnv.database, ssl: { rejectUnauthorized: false } });
  await admin.connect();
});
afterAll(async () => {
  await admin?.end();
  rmSync(dir, { recursive: true, force: true });
});

function startGatewayProcess(): Promise<{ child: ChildProcess; port: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', fixture, configFile], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'], env: process.env });
    let out = '';
    let err = '';
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /ready (\d+)/.exec(out);
      if (m) resolve({ child, port: Number(m[1]) });
    });
    child.on('exit', (code) => reject(new Error(`gateway exited with ${code}: ${err}`)));
  });
}

function killed(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

describe('fail-fast approvals across kill -9', () => {
  it('keeps an approval given while Sluice was down, uses it once, and never again after another kill -9', async () => {
    const { config } = loadConfigFile(configFile);
    const keyring = await Keyring.load(config.keys, config.store.data_dir);
    const dev = devIssuerFor(config, keyring)!;
    const ciToken = await dev.mint({ subject: 'pipeline', groups: ['ci'], kind: 'machine', ttlSeconds: 600 });
    const name = `apr_crash_${process.pid}`;
    await admin.query(`CREATE TABLE ${name} (n int)`);
    await admin.query(`GRANT INSERT, SELECT ON ${name} TO ${pgEnv.roles.writer.user}`);
    const sql = `INSERT INTO ${name} VALUES (1)`;
    const rows = async () => Number((await admin.query(`SELECT count(*) AS n FROM ${name}`)).rows[0].n);
    const run = async (port: number) => {
      const c = new pg.Client({ host: '127.0.0.1', port, user: 'write', database: 'orders', password: ciToken, ssl: false });
      c.on('error', () => undefined);
      await c.connect();
      try {
        return await c.query(sql).then(
          (r) => ({ rowCount: r.rowCount, message: '' }),
          (e: { code: string; message: string }) => ({ code: e.code, message: e.message }),
        );
      } finally {
        await c.end().catch(() => undefined);
      }
    };

    // The approver decides through a second process sharing the store, while the gateway is down.
    const storePath = join(dir, 'sluice.db');
    const audit = SqliteAuditStore.open({ path: storePath, synchronous: 'normal', chain: 'approver' });
    const store = SqliteApprovalStore.open(storePath, { synchronous: 'normal' });
    const service = new ApprovalService({ store, events: new EventPipeline(audit), policies: () => config.policies, hashKey: keyring.secret('approvals'), baseUrl: () => 'http://127.0.0.1', log: createLogger('silent') });
    const { authenticator } = await buildState(config, keyring);
    const approver: Principal = await authenticator.authenticate(await dev.mint({ subject: 'dana', groups: ['dba'], ttlSeconds: 600 }));

    try {
      const first = await startGatewayProcess();
      const held = await run(first.port);
      expect(held).toMatchObject({ code: '42501' });
      const id = /request (apr_[a-z2-7]{20})/.exec(held.message)![1]!;
      await killed(first.child);
      await service.decide(id, approver, 'approve', 'go');

      const second = await startGatewayProcess();
      expect(await run(second.port)).toMatchObject({ rowCount: 1 });
      expect(store.get(id)!.state).toBe('used');
      await killed(second.child);

      const third = await startGatewayProcess();
      const again = await run(third.port);
      expect(again).toMatchObject({ code: '42501' });
      expect(again.message).not.toContain(id);
      expect(await rows()).toBe(1);
      await killed(third.child);
    } finally {
      service.close();
      store.close();
      await audit.close();
    }
  });
});
