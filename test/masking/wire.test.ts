import { serialize } from 'pg-protocol';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { maskText, REDACTED } from '../../src/masking/strategies.js';
import { psql } from '../support/clients.js';
import type { BackendMessage } from '../support/raw-client.js';
import { startMaskingFixture, ROWS, type MaskingFixture, type UserRow } from './fixture.js';
import { openAs, roundTrip, textRows, withSession } from './wire-helpers.js';

let f: MaskingFixture;
let key: Buffer;
const hash = (v: string) => maskText(v, { strategy: 'hash' }, key);
const partial = (v: string) => maskText(v, { strategy: 'partial', keepLast: 4 }, key);

beforeAll(async () => {
  f = await startMaskingFixture();
  key = f.t.gw.keyring.secret('masking');
});
afterEach(async () => {
  await f.closeClients();
});
afterAll(async () => {
  await f?.stop();
});

/** What a masked principal must see for one row of `select *`. */
function maskedRow(r: UserRow): Record<string, unknown> {
  return {
    id: r.id,
    name: r.name,
    email: hash(r.email),
    password: REDACTED,
    api_key: null,
    card: partial(r.card),
    note: r.note.includes('@') ? r.note.replace(/ops\d+@corp\.example\.org/, '[masked:email]') : r.note,
    balance: r.balance,
  };
}

describe('results by column origin', () => {
  it('masks SELECT * for a machine identity with pg, and the exempt DBA sees raw values', async () => {
    const ci = await f.connect('read', f.tokens.ci);
    const got = await ci.query(`select * from ${f.schema}.users order by id`);
    expect(got.rows).toHaveLength(ROWS);
    for (const row of got.rows) expect(row).toEqual(maskedRow(f.rows.get(row.id)!));
    const dba = await f.connect('read', f.tokens.dba);
    const raw = await dba.query(`select * from ${f.schema}.users order by id`);
    expect(raw.rows[2]).toEqual({ ...f.rows.get(3)! });
  });

  it('masks the same way in binary result format', async () => {
    const ci = await f.connect('read', f.tokens.ci, { binary: true } as never);
    const got = await ci.query(`select id, email, password, api_key, card, balance::text as balance from ${f.schema}.users where id = $1`, [4]);
    const r = f.rows.get(4)!;
    expect(got.rows[0]).toEqual({ id: 4, email: hash(r.email), password: REDACTED, api_key: null, card: partial(r.card), balance: r.balance });
  });

  it('masks a column under an alias, through a view, and through a view of a view', async () => {
    const ci = await f.connect('read', f.tokens.ci);
    const r = f.rows.get(7)!;
    expect((await ci.query(`select email as e, name as n from ${f.schema}.users where id = 7`)).rows).toEqual([{ e: hash(r.email), n: r.name }]);
    const v = await ci.query(`select * from ${f.schema}.users_v where id = 7`);
    expect(v.rows[0].contact).toBe(hash(r.email));
    expect(v.rows[0].lower_email).not.toContain('@');
    expect(v.rows[0].name).toBe(r.name);
    const vv = await ci.query(`select * from ${f.schema}.users_vv order by who limit 1`);
    expect(vv.rows[0].contact).toMatch(/^[0-9a-f]{32}$/);
  });

  it('psql sees masked values, and COPY TO STDOUT is masked in text, csv and binary', async () => {
    const url = f.t.url('read');
    const sel = await psql(f.t, url, f.tokens.ci, ['-c', `select email, password, card from ${f.schema}.users where id = 2`]);
    expect(sel.code).toBe(0);
    expect(sel.stdout.trim()).toBe(`${hash(f.rows.get(2)!.email)}|${REDACTED}|${partial(f.rows.get(2)!.card)}`);
    const text = await psql(f.t, url, f.tokens.ci, ['-c', `copy ${f.schema}.users (id, email, api_key, note) to stdout`]);
    expect(text.code).toBe(0);
    const lines = text.stdout.trim().split('\n');
    expect(lines).toHaveLength(ROWS);
    expect(lines.find((l) => l.startsWith('5\t'))).toBe(`5\t${hash(f.rows.get(5)!.email)}\t\\N\tcall me at [masked:email] please`);
    expect(text.stdout).not.toContain('@example.com');
    const csv = await psql(f.t, url, f.tokens.ci, ['-c', `copy ${f.schema}.users to stdout with (format csv, header true)`]);
    expect(csv.code).toBe(0);
    expect(csv.stdout.split('\n')[0]).toBe('id,name,email,password,api_key,card,note,balance');
    expect(csv.stdout).not.toMatch(/@example\.com|correct-horse|4111 1111 1111 1111|key_\d/);
    const binary = await psql(f.t, url, f.tokens.ci, ['-c', `copy ${f.schema}.users (id, password) to stdout with (format binary)`]);
    expect(binary.code).toBe(0);
    expect(binary.stdout).not.toContain('correct-horse');
    expect(binary.stdout).toContain(REDACTED);
  });

  it('a cursor fetched in pieces is masked', async () => {
    const ci = await f.connect('read', f.tokens.ci);
    await ci.query('begin');
    await ci.query(`declare c cursor for select id, email from ${f.schema}.users order by id`);
    const first = await ci.query('fetch 3 from c');
    const next = await ci.query('fetch 2 from c');
    await ci.query('commit');
    expect([...first.rows, ...next.rows].map((r) => r.email)).toEqual([1, 2, 3, 4, 5].map((i) => hash(f.rows.get(i)!.email)));
  });
});

describe('rows without a RowDescription of their own', () => {
  it('a prepared statement executed again without Describe, and a portal resumed after PortalSuspended, stay masked', async () => {
    await withSession(openAs(f), async (s) => {
      const sql = `select id, email, name from ${f.schema}.users where id <= $1 order by id`;
      const prepared = await roundTrip(s, serialize.parse({ name: 'p1', text: sql, types: [] }), serialize.describe({ type: 'S', name: 'p1' }), serialize.sync());
      expect(prepared.map((m) => m.type)).toEqual(['1', 't', 'T', 'Z']);
      const run = await roundTrip(s, serialize.bind({ statement: 'p1', portal: '', values: ['3'] }), serialize.execute({ portal: '' }), serialize.sync());
      expect(textRows(run)).toEqual([1, 2, 3].map((i) => [String(i), hash(f.rows.get(i)!.email), f.rows.get(i)!.name]));

      await roundTrip(s, serialize.query('begin'));
      const first = await roundTrip(
        s,
        serialize.bind({ statement: 'p1', portal: 'cur', values: ['6'] }),
        serialize.execute({ portal: 'cur', rows: 2 }),
        serialize.sync(),
      );
      expect(first.some((m) => m.type === 's')).toBe(true);
      const rest = await roundTrip(s, serialize.execute({ portal: 'cur', rows: 0 }), serialize.sync());
      await roundTrip(s, serialize.query('commit'));
      const emails = [...textRows(first), ...textRows(rest)].map((r) => r[1]);
      expect(emails).toEqual([1, 2, 3, 4, 5, 6].map((i) => hash(f.rows.get(i)!.email)));
    });
  });

  it('a portal bound without any Describe has every value masked', async () => {
    await withSession(openAs(f), async (s) => {
      const got = await roundTrip(
        s,
        serialize.parse({ name: '', text: `select id, name from ${f.schema}.users where id = 1`, types: [] }),
        serialize.bind({ statement: '', portal: '' }),
        serialize.execute({ portal: '' }),
        serialize.sync(),
      );
      expect(textRows(got)).toEqual([[null, null]]);
    });
  });
});

describe('values echoed outside rows', () => {
  it('a unique violation and a failed cast do not echo the value, to the client or into the audit log', async () => {
    const ci = await f.connect('write', f.tokens.ci);
    const dup = await ci.query(`insert into ${f.schema}.users (id, name, email) values (1000, 'x', 'user1@example.com')`).catch((e) => e);
    expect(dup.message).toBe('duplicate key value violates unique constraint "users_email_key"');
    expect(dup.code).toBe('23505');
    expect(String(dup.detail)).not.toContain('user1@example.com');
    const cast = await ci.query(`select 'ssn 078-05-1120 alice@example.com'::int /* m-cast */`).catch((e) => e);
    expect(cast.code).toBe('22P02');
    expect(cast.message).toBe(`invalid input syntax for type integer: "${REDACTED}"`);
    const completed = await vi.waitFor(() => {
      const started = f.t.gw.store.query({ types: ['statement.started'], text: 'm-cast', limit: 1 });
      expect(started).toHaveLength(1);
      const done = f.t.gw.store.query({ types: ['statement.completed'], sessionId: started[0]!.sessionId, limit: 50 });
      const mine = done.find((e) => e.data.statement === started[0]!.data.statement);
      expect(mine).toBeDefined();
      return mine!;
    });
    expect(completed.data.sqlstate).toBe('22P02');
    expect(JSON.stringify(completed)).not.toContain('alice@example.com');
  });

  it('a NOTIFY payload is redacted for a masked session and raw for the exempt', async () => {
    const masked = await openAs(f);
    const exempt = await openAs(f, 'read', f.tokens.dba);
    try {
      for (const s of [masked, exempt]) await roundTrip(s, serialize.query('listen mask_channel'));
      const sent = await roundTrip(masked, serialize.query(`notify mask_channel, 'user9@example.com'`));
      const note = (msgs: BackendMessage[]) => msgs.find((m) => m.type === 'A')?.payload.toString('utf8');
      expect(note(sent)).toContain(REDACTED);
      expect(note(sent)).not.toContain('user9@example.com');
      const other = await roundTrip(exempt, serialize.query('select 1'));
      expect(note(other)).toContain('user9@example.com');
    } finally {
      masked.client.destroy();
      exempt.client.destroy();
    }
  });
});

describe('indirect reads are judged before they run', () => {
  const denied = [
    (s: string) => `select lower(email) from ${s}.users`,
    (s: string) => `select encode(convert_to(email, 'UTF8'), 'hex') from ${s}.users`,
    (s: string) => `select email::bytea from ${s}.users`,
    (s: string) => `select row_to_json(u) from ${s}.users u`,
    (s: string) => `select u from ${s}.users u`,
    (s: string) => `select id from ${s}.users where email like 'user1%'`,
    (s: string) => `select id from ${s}.users order by password`,
    (s: string) => `select email as e, id from ${s}.users order by e`,
    (s: string) => `select email, id from ${s}.users order by 1`,
    (s: string) => `select count(*) from ${s}.users group by card`,
    (s: string) => `select string_agg(email, ',') from ${s}.users`,
    (s: string) => `select email from ${s}.users union select 'x'`,
    (s: string) => `with c as (select email from ${s}.users) select * from c`,
    (s: string) => `select x from (select email as x from ${s}.users) d`,
    (s: string) => `select id from ${s}.users where id in (select id from ${s}.users where password = 'x')`,
    (s: string) => `select * from ${s}.leak()`,
    (s: string) => `copy (select email from ${s}.users) to stdout`,
    (s: string) => `select upper(contact) from ${s}.users_v`,
    (s: string) => `select id from ${s}.users_v where lower_email like 'a%'`,
  ];
  it.each(denied.map((d) => [d('S')] as const))('%s is denied with 42501', async (shown) => {
    const sql = shown.replace(/\bS\./g, `${f.schema}.`);
    const ci = await f.connect('read', f.tokens.ci);
    const err = await ci.query(sql).catch((e) => e);
    expect(err.code).toBe('42501');
    expect(err.message).toMatch(/masked column|user-defined function/);
    expect(err.message).toContain('pii');
    expect((await ci.query('select 1 as ok')).rows).toEqual([{ ok: 1 }]);
  });

  it('the exempt DBA runs the same statements', async () => {
    const dba = await f.connect('read', f.tokens.dba);
    const got = await dba.query(`select lower(email) as l from ${f.schema}.users where email like 'user1@%'`);
    expect(got.rows).toEqual([{ l: 'user1@example.com' }]);
  });
});

describe('legitimate queries keep their raw values', () => {
  it('lookups, joins on unmasked keys, counts and aggregates over unmasked columns', async () => {
    const ci = await f.connect('read', f.tokens.ci);
    expect((await ci.query(`select id, name, balance from ${f.schema}.users where id = 3`)).rows).toEqual([{ id: 3, name: 'User 3', balance: '30.50' }]);
    expect((await ci.query(`select count(*)::int as n from ${f.schema}.users`)).rows).toEqual([{ n: ROWS }]);
    const sum = await ci.query(`select sum(balance)::text as s, max(id) as m, min(name) as n from ${f.schema}.users`);
    const expected = [...f.rows.values()].reduce((a, r) => a + Number(r.balance), 0);
    expect(sum.rows).toEqual([{ s: expected.toFixed(2), m: ROWS, n: 'User 1' }]);
    const join = await ci.query(`select u.id, u.name, c.name as customer from ${f.schema}.users u join customers c on c.id = u.id where u.id <= 2 order by u.id`);
    const customers = await f.su.query('select id, name from customers where id <= 2 order by id');
    expect(join.rows).toEqual(customers.rows.map((c) => ({ id: c.id, name: `User ${c.id}`, customer: c.name })));
    const grouped = await ci.query(`select (id % 2) as parity, count(*)::int as n from ${f.schema}.users group by 1 order by 1`);
    expect(grouped.rows).toEqual([
      { parity: 0, n: ROWS / 2 },
      { parity: 1, n: ROWS / 2 },
    ]);
  });
});

describe('metrics', () => {
  it('counts masked messages and masking denials per resource', async () => {
    const ci = await f.connect('read', f.tokens.ci);
    await ci.query(`select email from ${f.schema}.users where id = 1`);
    await ci.query(`select lower(email) from ${f.schema}.users`).catch(() => undefined);
    const text = await (await fetch(`${f.t.httpUrl}/metrics`)).text();
    const value = (re: RegExp) => Number(re.exec(text)?.[1] ?? 0);
    expect(value(/^sluice_masked_messages_total\{resource="orders"\} (\d+)/m)).toBeGreaterThan(0);
    expect(value(/^sluice_statements_denied_total\{protocol="postgres",resource="orders",rule="sluice-masking"\} (\d+)/m)).toBeGreaterThan(0);
  });
});

describe('statement text in the audit log', () => {
  it('never records a password literal, for any session', async () => {
    const dba = await f.connect('read', f.tokens.dba);
    const err = await dba.query(`alter role nobody_here with password 'sluice-audit-secret-1' /* m-pw */`).catch((e) => e);
    expect(err.code).toBe('42501');
    const recorded = await vi.waitFor(() => {
      const found = f.t.gw.store.query({ text: 'm-pw', limit: 10 });
      expect(found.length).toBeGreaterThanOrEqual(2);
      return found;
    });
    expect(JSON.stringify(recorded)).not.toContain('sluice-audit-secret-1');
    expect(JSON.stringify(recorded)).toContain("password '[redacted]'");
  });

  it('runs the detectors over a masked session\'s statement text and parameters', async () => {
    const ci = await f.connect('read', f.tokens.ci);
    await ci.query(`select $1::text as p, 'reach me at audit.probe@example.org' as t /* m-detect */`, ['card 4111 1111 1111 1111']);
    const started = await vi.waitFor(() => {
      const found = f.t.gw.store.query({ types: ['statement.started'], text: 'm-detect', limit: 5 });
      expect(found).toHaveLength(1);
      return found[0]!;
    });
    expect(JSON.stringify(started)).not.toMatch(/audit\.probe@example\.org|4111 1111 1111 1111/);
    expect(started.data.text).toContain('[masked:email]');
  });
});

describe('audit', () => {
  it('records a masking denial as statement.denied with rule sluice-masking', async () => {
    const ci = await f.connect('read', f.tokens.ci);
    const err = await ci.query(`select md5(password) from ${f.schema}.users /* m-deny */`).catch((e) => e);
    expect(err.code).toBe('42501');
    const denied = await vi.waitFor(() => {
      const found = f.t.gw.store.query({ types: ['statement.denied'], text: 'm-deny', limit: 5 });
      expect(found).toHaveLength(1);
      return found[0]!;
    });
    expect(denied.data.rule).toBe('sluice-masking');
    expect(denied.data.reason).toContain(`${f.schema}.users.password`);
  });
});
