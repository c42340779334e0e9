import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runExplain } from '../support/explain.js';

const dir = mkdtempSync(join(tmpdir(), 'sluice-explain-'));
const config = join(dir, 'sluice.yaml');
writeFileSync(
  config,
  `server: { tls: { self_signed: true } }
identity:
  issuers: [{ name: corp, issuer: https://idp.example.com, audience: sluice }]
resources:
  - { name: orders, type: postgres, upstream: { host: db, database: orders }, credentials: { read: { user: ro, password: '\${env:RO}' } } }
policies:
  - { name: eng-read, when: { groups: [eng] }, resources: [orders], grants: [read, ddl] }
  - { name: no-ddl-in-ci, effect: deny, when: { groups: [ci] }, resources: ['*'], statements: { kinds: [ddl.drop] } }
  - { name: big-deletes, when: { groups: [eng] }, resources: [orders], approval: { statements: { kinds: [delete] }, rows_over: 100, mode: fail_fast, approvers: [{ groups: [dba] }] } }
`,
);

function explain(groups: string, grant: string, sql: string) {
  return runExplain(['--config', config, '--subject', 'alice', '--groups', groups, '--resource', 'orders', '--grant', grant, sql]);
}

describe('sluice policy explain', () => {
  it('prints the facts and the deciding rule, and exits 1 on a denial', () => {
    const r = explain('eng,ci', 'ddl', 'SELECT 1; drop /* x */ TABLE Orders');
    expect(r.status).toBe(1);
    expect(r.out.session).toMatchObject({ allowed: true, policy: 'eng-read' });
    expect(r.out.statements.map((s: { facts: { kind: string } }) => s.facts.kind)).toEqual(['select', 'ddl.drop']);
    expect(r.out.verdict).toEqual({ action: 'deny', rule: 'no-ddl-in-ci', reason: 'sluice: DROP TABLE denied by rule no-ddl-in-ci', sqlstate: '42501' });
  });

  it('says when an allowed statement would be held for approval', () => {
    const r = explain('eng', 'ddl', 'DELETE FROM orders WHERE id > 5');
    expect(r.status).toBe(0);
    expect(r.out.verdict).toEqual({ action: 'allow', rule: 'sluice-grants' });
    expect(r.out.approval).toEqual({ policy: 'big-deletes', mode: 'fail_fast', rowsOver: 100, required: 1 });
    expect(explain('eng', 'ddl', 'SELECT 1').out.approval).toBeUndefined();
  });

  it('allows what the grant covers and denies unparseable text', () => {
    expect(explain('eng', 'read', 'select * from orders').out.verdict).toEqual({ action: 'allow', rule: 'sluice-grants' });
    const bad = explain('eng', 'read', 'selec 1');
    expect(bad.status).toBe(1);
    expect(bad.out.verdict).toMatchObject({ action: 'deny', rule: 'sluice-unparseable' });
  });
});
