import { randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runExplain } from '../support/explain.js';
import { testPostgres } from '../support/pg-env.js';

/** `sluice policy explain` reads the resource's catalog to show the masking verdict, as the gateway would judge. */
const env = testPostgres();
const schema = `explain_${randomUUID().slice(0, 8)}`;
const dir = mkdtempSync(join(tmpdir(), 'sluice-explain-masking-'));
const config = join(dir, 'sluice.yaml');
let su: pg.Client;

beforeAll(async () => {
  su = new pg.Client({ host: env.host, port: env.port, user: env.superuser.user, password: env.superuser.password, database: env.database });
  await su.connect();
  await su.query(`create schema ${schema}; create table ${schema}.users (id int, email text); grant usage on schema ${schema} to ${env.roles.reader.user}`);
  writeFileSync(
    config,
    `server: { tls: { self_signed: true } }
identity:
  issuers: [{ name: corp, issuer: https://idp.example.com, audience: sluice }]
resources:
  - name: orders
    type: postgres
    upstream: { host: ${env.host}, port: ${env.port}, database: ${env.database}, tls: { mode: require } }
    credentials: { read: { user: ${env.roles.reader.user}, password: '\${env:EXPLAIN_RO}' } }
policies:
  - { name: ci-read, when: { groups: [ci] }, resources: [orders], grants: [read] }
  - { name: pii, when: {}, resources: [orders], masking: { columns: [{ match: ['${schema}.users.email'], strategy: hash }] } }
`,
  );
});
afterAll(async () => {
  await su?.query(`drop schema if exists ${schema} cascade`).catch(() => undefined);
  await su?.end();
});

function explain(sql: string, password = env.roles.reader.password) {
  return runExplain(['--config', config, '--subject', 'ci', '--groups', 'ci', '--kind', 'machine', '--resource', 'orders', '--grant', 'read', sql], { EXPLAIN_RO: password });
}

describe('sluice policy explain with masking', () => {
  it('shows the masking verdict from the live catalog, and exits 1 when masking refuses', () => {
    const allowed = explain(`select email from ${schema}.users`);
    expect(allowed.status, allowed.stderr).toBe(0);
    expect(allowed.out.masking).toEqual({ policies: ['pii'], verdict: { action: 'allow', maskAll: false } });
    const refused = explain(`select id from ${schema}.users where email like 'a%'`);
    expect(refused.status).toBe(1);
    expect(refused.out.verdict.action).toBe('allow');
    expect(refused.out.masking.verdict).toMatchObject({ action: 'deny', rule: 'sluice-masking' });
    expect(refused.out.masking.verdict.reason).toContain(`${schema}.users.email in a WHERE condition`);
  });

  it('says so when the catalog cannot be read, without a verdict', () => {
    const r = explain(`select email from ${schema}.users`, 'wrong-password');
    expect(r.out.masking.verdict).toBeUndefined();
    expect(r.out.masking.unavailable).toMatch(/could not be read/);
    expect(JSON.stringify(r.out)).not.toContain('wrong-password');
  });
});
