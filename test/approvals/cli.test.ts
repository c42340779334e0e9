import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { ApprovalStatus } from '../../src/approvals/types.js';
import { collectOutput } from '../support/clients.js';
import { startGateway, type TestGateway } from '../support/gateway.js';
import { runCli, spawnCli } from '../cli/run-cli.js';

// Every CLI run is a fresh Node process compiling TypeScript; on a busy machine a few of them take a while.
vi.setConfig({ testTimeout: 120_000 });

let t: TestGateway;
let olivia: string;
let dave: string;
let erin: string;
let bob: string;

beforeAll(async () => {
  t = await startGateway((c) => {
    c.server.public_url = 'https://sluice.example.com';
    const approvers = [{ groups: ['dba'] }];
    c.policies.push(
      { name: 'ops-write-on-request', when: { groups: ['ops'] }, resources: ['orders'], access: { grants: ['write'], max_duration: '4h', approvers, request_ttl: '10m' } },
      { name: 'hold-drops', when: { groups: ['ops'] }, resources: ['orders'], approval: { statements: { kinds: ['ddl.drop', 'delete'] }, approvers, request_ttl: '10m' } },
    );
  });
  [olivia, dave, erin, bob] = await Promise.all([t.token('olivia', ['ops'], { ttlSeconds: 900 }), t.token('dave', ['dba'], { ttlSeconds: 900 }), t.token('erin', ['dba'], { ttlSeconds: 900 }), t.token('bob', ['dev'], { ttlSeconds: 900 })]);
});
afterAll(async () => {
  await t?.stop();
});

/** Points a command at the test gateway with this token; no config file is read. */
function sluice(token: string, ...args: string[]) {
  return runCli([...args, '--url', t.httpUrl, '--token', token]);
}

async function requested(): Promise<string> {
  const r = await sluice(olivia, 'access', 'request', 'orders', '--grant', 'write', '--for', '2h', '--reason', 'INC-7 backfill');
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  const id = /: (apr_[a-z2-7]{20}) \(pending\)/.exec(r.stdout)?.[1];
  expect(id).toBeDefined();
  return id!;
}

async function decide(id: string, decision: 'approve' | 'deny', token = dave): Promise<ApprovalStatus> {
  const res = await fetch(`${t.httpUrl}/api/v1/approvals/${id}/${decision}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ reason: `${decision} from the test` }),
  });
  expect(res.status).toBe(200);
  return (await res.json()) as ApprovalStatus;
}

/** Long-polls the service holds open for this request. */
function waiters(id: string): number {
  return t.gw.approvals.waiters(id);
}

describe('sluice access and sluice approvals', () => {
  it('requests access for 2h, lists, shows and approves it', async () => {
    const id = await requested();

    const table = await sluice(dave, 'approvals', 'list', '--state', 'pending');
    expect(table.code).toBe(0);
    const lines = table.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^ID\s+KIND\s+STATE\s+RESOURCE\s+REQUESTER\s+RULE\s+CREATED\s+WHAT$/);
    const row = lines.find((l) => l.startsWith(id));
    expect(row).toMatch(new RegExp(`^${id}\\s+access\\s+pending\\s+orders\\s+olivia\\s+ops-write-on-request\\s+\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\dZ\\s+grant write for 2h$`));

    const bystander = await sluice(bob, 'access', 'list', '--json');
    expect(bystander.code).toBe(0);
    expect((JSON.parse(bystander.stdout) as ApprovalStatus[]).map((s) => s.request.id)).not.toContain(id);
    const hidden = await sluice(bob, 'approvals', 'show', id);
    expect(hidden.code).toBe(1);
    expect(hidden.stderr).toContain('[approval_not_found]');

    const shown = await sluice(olivia, 'approvals', 'show', id);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toContain(`${id}  access  pending\n`);
    expect(shown.stdout).toMatch(/requester:\s+olivia \(person, groups ops\)/);
    expect(shown.stdout).toMatch(/justification:\s+INC-7 backfill/);
    expect(shown.stdout).toMatch(/access:\s+grant write for 2h/);
    expect(shown.stdout).toContain(`https://sluice.example.com/approvals/${id}`);
    expect(shown.stdout).toMatch(/decisions:\s+none yet/);

    const self = await sluice(olivia, 'approvals', 'approve', id, '--reason', 'mine');
    expect(self.code).toBe(1);
    expect(self.stderr).toMatch(/cannot decide it.*\[self_approval\]/);

    const approved = await sluice(dave, 'access', 'approve', id, '--reason', 'ok for INC-7');
    expect(approved.stderr).toBe('');
    expect(approved.stdout).toBe(`approved ${id}: request is approved (1 of 1 approval)\n`);
    const replayed = await sluice(dave, 'approvals', 'approve', id, '--reason', 'again');
    expect(replayed.code).toBe(1);
    expect(replayed.stderr).toContain('[decision_replayed]');

    const after = await sluice(olivia, 'approvals', 'show', id, '--json');
    const status = JSON.parse(after.stdout) as ApprovalStatus;
    expect(status.state).toBe('approved');
    expect(status.decisions).toEqual([expect.objectContaining({ decision: 'approve', reason: 'ok for INC-7' })]);
    const human = await sluice(olivia, 'approvals', 'show', id);
    expect(human.stdout).toMatch(/approve +by dave: ok for INC-7/);
    expect(human.stdout).toMatch(/valid until:\s+\d{4}-/);
  });

  it('shows a held statement in full and denies it', async () => {
    const state = t.gw.state();
    const held = await t.gw.approvals.requestStatement({
      principal: await state.authenticator.authenticate(olivia),
      resource: 'orders',
      hold: { policy: 'hold-drops', rule: state.config.policies.find((p) => p.name === 'hold-drops')!.approval! },
      sessionId: '00000000-0000-4000-8000-000000000002',
      grant: 'write',
      text: 'delete from orders\nwhere created < $1',
      exact: { text: 'delete from orders\nwhere created < $1', paramsDigest: 'digest' },
      params: ['2020-01-01'],
      facts: { kinds: ['delete'], tables: ['public.orders'], functions: [], opaque: false },
      rows: 1234,
      justification: 'GDPR purge',
    });
    const id = held.request.id;
    const listed = await sluice(erin, 'approvals', 'list', '--kind', 'statement');
    expect(listed.stdout.split('\n').find((l) => l.startsWith(id))).toMatch(/statement\s+pending\s+orders\s+olivia\s+hold-drops\s+.*delete from orders …$/);

    const shown = await sluice(erin, 'approvals', 'show', id);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toContain('statement:\n  delete from orders\n  where created < $1\n');
    expect(shown.stdout).toMatch(/params:\s+\["2020-01-01"\]/);
    expect(shown.stdout).toMatch(/rows:\s+1234/);
    expect(shown.stdout).toMatch(/facts:\s+kinds delete; tables public\.orders; functions -/);
    expect(shown.stdout).toMatch(/session:\s+00000000-0000-4000-8000-000000000002 \(grant write, session waits\)/);
    expect(shown.stdout).toMatch(/justification:\s+GDPR purge/);

    const denied = await sluice(erin, 'approvals', 'deny', id, '--reason', 'purge through the job instead');
    expect(denied.stdout).toBe(`denied ${id}: request is denied (0 of 1 approval)\n`);
    const noReason = await sluice(erin, 'approvals', 'deny', id);
    expect(noReason.code).toBe(1);
    expect(noReason.stderr).toContain("required option '--reason <text>' not specified");
  });
});

describe('sluice approvals wait', () => {
  it('exits 0 once the request is approved while it waits', async () => {
    const id = await requested();
    const child = spawnCli(['approvals', 'wait', id, '--timeout', '2m', '--url', t.httpUrl, '--token', olivia]);
    const done = collectOutput(child, 110_000);
    await expect.poll(() => waiters(id), { timeout: 60_000 }).toBe(1);
    await decide(id, 'approve');
    const r = await done;
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^${id}: approved by dave: approve from the test \\(valid until \\d{4}-`));
  });

  it('exits 1 when denied', async () => {
    const id = await requested();
    await decide(id, 'deny');
    const r = await sluice(olivia, 'approvals', 'wait', id);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe(`${id}: denied by dave: deny from the test\n`);
  });

  it('exits 2 when the timeout passes first', async () => {
    const id = await requested();
    const r = await sluice(olivia, 'approvals', 'wait', id, '--timeout', '2s');
    expect(r.code).toBe(2);
    expect(r.stdout).toBe(`${id}: still pending after 2s (0 of 1 approval); see https://sluice.example.com/approvals/${id}\n`);
    const bad = await sluice(olivia, 'approvals', 'wait', id, '--timeout', 'soon');
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('--timeout: expected a duration');
  });

  it('access request --wait prints the request, then the decision', async () => {
    const child = spawnCli(['access', 'request', 'orders', '--grant', 'write', '--for', '90m', '--reason', 'INC-9', '--wait', '--url', t.httpUrl, '--token', olivia]);
    const done = collectOutput(child, 110_000);
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    const id = await vi.waitFor(() => /: (apr_[a-z2-7]{20}) \(pending\)/.exec(out)![1]!, { timeout: 60_000 });
    await expect.poll(() => waiters(id), { timeout: 60_000 }).toBe(1);
    await decide(id, 'approve', erin);
    const r = await done;
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`requested grant write on orders for 1h30m: ${id} (pending)\n`);
    expect(r.stdout).toContain(`${id}: approved by erin`);
  });
});
