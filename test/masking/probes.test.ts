import { serialize } from 'pg-protocol';
import type pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { maskText, REDACTED } from '../../src/masking/strategies.js';
import { psql } from '../support/clients.js';
import { CLOSED, type BackendMessage, type Session } from '../support/raw-client.js';
import { startMaskingFixture, type MaskingFixture } from './fixture.js';
import { errorText, fixtureSecrets, leakScanner, resultText, type LeakScan } from './leak-scan.js';
import { dataRows, expectUsable, openAs, roundTrip, textRows, wireText, withSession } from './wire-helpers.js';

/**
 * Second adversarial round against the real gateway, as the masked CI
 * machine with `indirect: deny`: extended-protocol sequences, SQL cursors,
 * RETURNING, trigger notices, NOTIFY, json and array columns, wide and
 * large results and COPY options. Every probe ends refused (42501), or with
 * nothing the client receives revealing a raw value, and the session still
 * usable or cleanly ended.
 */

let f: MaskingFixture;
let key: Buffer;
const hash = (v: string) => maskText(v, { strategy: 'hash' }, key);

/** Secrets of the `docs` table created around Sluice before any session. */
const DOC = {
  email: 'docs.owner@secret-corp.example',
  ghp: `ghp_${'A1b2C3d4E5'.repeat(3)}abcdef`,
  jwt: 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJwcm9iZS11c2VyLTQyIn0.c2lnbmF0dXJlLXBhcnQtb2YtdGhlLXRva2Vu',
  pin: 987654,
  part: 'partition_secret_key_77',
};

let leaks: LeakScan;

const open = (grant = 'read'): Promise<Session> => openAs(f, grant);

/** A Bind with per-column result formats (pg-protocol only sets one format for all). */
function bindWith(portal: string, statement: string, values: (string | null)[], resultFormats: number[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`${portal}\0${statement}\0`, 'utf8')];
  const i16 = (n: number) => {
    const b = Buffer.alloc(2);
    b.writeInt16BE(n);
    return b;
  };
  parts.push(i16(0), i16(values.length));
  for (const v of values) {
    const len = Buffer.alloc(4);
    if (v === null) {
      len.writeInt32BE(-1);
      parts.push(len);
    } else {
      const bytes = Buffer.from(v, 'utf8');
      len.writeInt32BE(bytes.length);
      parts.push(len, bytes);
    }
  }
  parts.push(i16(resultFormats.length), ...resultFormats.map(i16));
  const body = Buffer.concat(parts);
  const head = Buffer.alloc(5);
  head.write('B', 0, 'latin1');
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}

const S = () => f.schema;

beforeAll(async () => {
  f = await startMaskingFixture((cfg, schema) => {
    cfg.policies.find((p: { name: string }) => p.name === 'pii').masking.columns.push({ match: [`${schema}.docs.pin`], strategy: 'redact' });
  });
  key = f.t.gw.keyring.secret('masking');
  const reader = f.t.pg.roles.reader.user;
  const writer = f.t.pg.roles.writer.user;
  await f.su.query(`
    create table ${S()}.docs (id int primary key, profile jsonb, api_key text[], token text, pin int, amount numeric);
    insert into ${S()}.docs values
      (1, '{"owner": {"email": "${DOC.email}"}, "tier": "gold"}', array['${DOC.ghp}', 'other_key'], 'bearer ${DOC.jwt}', ${DOC.pin}, 12.5),
      (2, null, null, null, null, null);
    create table ${S()}.parts (id int, api_key text) partition by range (id);
    create table ${S()}.parts_1 partition of ${S()}.parts for values from (0) to (100);
    insert into ${S()}.parts values (1, '${DOC.part}');
    grant select on ${S()}.docs, ${S()}.parts, ${S()}.parts_1 to ${reader}, ${writer};
    grant insert, update, delete on ${S()}.docs to ${writer};
    create function ${S()}.shout() returns trigger language plpgsql as $$
      begin
        raise notice 'changed: % % %', new.password, new.email, new.api_key;
        if new.name = 'boom' then
          raise exception 'refusing %', old.password using detail = 'card ' || old.card, hint = old.email;
        end if;
        return new;
      end $$;
    create trigger shout before update on ${S()}.users for each row execute function ${S()}.shout();
  `);
  leaks = leakScanner([...fixtureSecrets(f.rows.values()), DOC.email, DOC.ghp, DOC.jwt, String(DOC.pin), DOC.part, 'probe-written-pw-1', 'probe-written@example.com']);
});
afterEach(async () => {
  await f.closeClients();
});
afterAll(async () => {
  await f?.stop();
});

describe('leaks() sees what it must', () => {
  it('finds raw, hex, base64 and binary-int forms, and passes masked values', () => {
    const r = f.rows.get(3)!;
    expect(leaks(r.password.toUpperCase())).toBe(r.password);
    expect(leaks(Buffer.from(DOC.ghp).toString('base64'))).toBe(DOC.ghp);
    const pin = Buffer.alloc(4);
    pin.writeInt32BE(DOC.pin);
    expect(leaks(wireText([{ type: 'D', payload: pin }]))).toBe(String(DOC.pin));
    expect(leaks(`${hash(r.email)} ${REDACTED} ****1111`)).toBeUndefined();
  });
});

describe('extended protocol sequences', () => {
  it('Describe of one unnamed statement, then a different unnamed statement bound and executed in the same pipeline', async () => {
    await withSession(open(), async (s) => {
      const got = await roundTrip(
        s,
        serialize.parse({ name: '', text: `select id, name from ${S()}.users where id = 1`, types: [] }),
        serialize.describe({ type: 'S', name: '' }),
        serialize.parse({ name: '', text: `select password, email, api_key from ${S()}.users where id = 1`, types: [] }),
        serialize.bind({ statement: '', portal: '' }),
        serialize.execute({ portal: '' }),
        serialize.sync(),
      );
      expect(leaks(wireText(got))).toBeUndefined();
      expect(textRows(got)).toHaveLength(1);
      await expectUsable(s);
    });
  });

  it('Close then re-Parse of the same name with a masked select, executed without a new Describe', async () => {
    await withSession(open(), async (s) => {
      await roundTrip(s, serialize.parse({ name: 'a', text: `select id, name from ${S()}.users where id = 2`, types: [] }), serialize.describe({ type: 'S', name: 'a' }), serialize.sync());
      const got = await roundTrip(
        s,
        serialize.close({ type: 'S', name: 'a' }),
        serialize.parse({ name: 'a', text: `select password, email from ${S()}.users where id = 2`, types: [] }),
        serialize.bind({ statement: 'a', portal: '' }),
        serialize.execute({ portal: '' }),
        serialize.sync(),
      );
      expect(leaks(wireText(got))).toBeUndefined();
      expect(textRows(got)).toHaveLength(1);
      await expectUsable(s);
    });
  });

  it('a failed re-Parse of an existing name does not change what the name is masked as', async () => {
    await withSession(open(), async (s) => {
      await roundTrip(s, serialize.parse({ name: 'b', text: `select password, email from ${S()}.users where id = 4`, types: [] }), serialize.describe({ type: 'S', name: 'b' }), serialize.sync());
      const dup = await roundTrip(s, serialize.parse({ name: 'b', text: `select id, name from ${S()}.users where id = 4`, types: [] }), serialize.sync());
      expect(dup.find((m) => m.type === 'E')).toBeDefined();
      const got = await roundTrip(s, serialize.bind({ statement: 'b', portal: '' }), serialize.execute({ portal: '' }), serialize.sync());
      expect(textRows(got)).toHaveLength(1);
      expect(leaks(wireText([...dup, ...got]))).toBeUndefined();
      await expectUsable(s);
    });
  });

  it('Execute with maxRows, a Describe of the portal in between, then the rest', async () => {
    await withSession(open(), async (s) => {
      await roundTrip(s, serialize.query('begin'));
      const got = await roundTrip(
        s,
        serialize.parse({ name: 'm', text: `select id, email, password, card from ${S()}.users order by id`, types: [] }),
        serialize.bind({ statement: 'm', portal: 'pm' }),
        serialize.execute({ portal: 'pm', rows: 3 }),
        serialize.describe({ type: 'P', name: 'pm' }),
        serialize.execute({ portal: 'pm', rows: 5 }),
        serialize.flush(),
        serialize.execute({ portal: 'pm', rows: 0 }),
        serialize.sync(),
      );
      expect(leaks(wireText(got))).toBeUndefined();
      expect(dataRows(got)).toHaveLength(40);
      await roundTrip(s, serialize.query('commit'));
      await expectUsable(s);
    });
  });

  it('several Parse/Bind/Describe/Execute pipelined without Sync, a Flush between, then one Sync', async () => {
    const s = await open();
    const stmts = [
      `select id, name from ${S()}.users where id = 5`,
      `select email, password from ${S()}.users where id = 5`,
      `select api_key, card, note from ${S()}.users where id = 5`,
      `select * from ${S()}.users_v where id = 5`,
    ];
    try {
      const msgs: Buffer[] = [];
      stmts.forEach((text, i) => {
        msgs.push(serialize.parse({ name: `q${i}`, text, types: [] }), serialize.bind({ statement: `q${i}`, portal: `p${i}` }));
        if (i % 2 === 0) msgs.push(serialize.describe({ type: 'P', name: `p${i}` }));
        msgs.push(serialize.execute({ portal: `p${i}` }));
        if (i === 1) msgs.push(serialize.flush());
      });
      const got = await roundTrip(s, ...msgs, serialize.sync());
      expect(leaks(wireText(got))).toBeUndefined();
      expect(got.filter((m) => m.type === 'C')).toHaveLength(4);
      // The described unmasked statement keeps its raw values.
      expect(textRows(got)[0]).toEqual(['5', f.rows.get(5)!.name]);
      await expectUsable(s);
    } finally {
      s.client.destroy();
    }
  });

  it('a Parse error mid-pipeline, then Execute of a portal bound before it', async () => {
    await withSession(open(), async (s) => {
      await roundTrip(s, serialize.query('begin'));
      const got = await roundTrip(
        s,
        serialize.parse({ name: 'e1', text: `select email, password from ${S()}.users where id = 6`, types: [] }),
        serialize.bind({ statement: 'e1', portal: 'pe' }),
        serialize.parse({ name: 'e2', text: 'select from nowhere where', types: [] }),
        serialize.execute({ portal: 'pe' }),
        serialize.sync(),
      );
      expect(got.some((m) => m.type === 'E')).toBe(true);
      const again = await roundTrip(s, serialize.execute({ portal: 'pe' }), serialize.sync());
      expect(leaks(wireText([...got, ...again]))).toBeUndefined();
      await roundTrip(s, serialize.query('rollback'));
      await expectUsable(s);
    });
  });

  it('mixed binary and text result formats per column over int, text, numeric, array columns, and jsonb in text', async () => {
    await withSession(open(), async (s) => {
      const u = await roundTrip(
        s,
        serialize.parse({ name: 'bu', text: `select id, email, balance, password, card, api_key from ${S()}.users where id = 8`, types: [] }),
        serialize.describe({ type: 'S', name: 'bu' }),
        bindWith('', 'bu', [], [1, 0, 1, 1, 0, 1]),
        serialize.execute({ portal: '' }),
        serialize.sync(),
      );
      expect(leaks(wireText(u))).toBeUndefined();
      const [row] = dataRows(u);
      expect(row![0]!.readInt32BE(0)).toBe(8);
      expect(row![1]!.toString()).toBe(hash(f.rows.get(8)!.email));
      expect(row![3]!.toString()).toBe(REDACTED);
      const d = await roundTrip(
        s,
        serialize.parse({ name: 'bd', text: `select id, profile, api_key, token, pin, amount from ${S()}.docs order by id`, types: [] }),
        serialize.describe({ type: 'S', name: 'bd' }),
        bindWith('', 'bd', [], [1, 0, 1, 0, 1, 1]),
        serialize.execute({ portal: '' }),
        bindWith('', 'bd', [], [0, 0, 1, 1, 1, 0]),
        serialize.execute({ portal: '' }),
        serialize.sync(),
      );
      expect(leaks(wireText(d))).toBeUndefined();
      expect(dataRows(d)).toHaveLength(4);
      await expectUsable(s);
    });
  });

  it('a FunctionCall of a built-in that runs a query given as text', async () => {
    const oid = (await f.su.query(`select 'query_to_xml(text,bool,bool,text)'::regprocedure::oid::int as o`)).rows[0].o as number;
    await withSession(open(), async (s) => {
      const args = [`select email, password from ${S()}.users`, 't', 'f', ''];
      const parts: Buffer[] = [];
      const i32 = (n: number) => {
        const b = Buffer.alloc(4);
        b.writeInt32BE(n);
        return b;
      };
      const i16 = (n: number) => {
        const b = Buffer.alloc(2);
        b.writeInt16BE(n);
        return b;
      };
      parts.push(i32(oid), i16(0), i16(args.length));
      for (const a of args) parts.push(i32(Buffer.byteLength(a)), Buffer.from(a));
      parts.push(i16(0));
      const body = Buffer.concat(parts);
      s.client.write(Buffer.concat([Buffer.from('F'), i32(body.length + 4), body]));
      const got: BackendMessage[] = [];
      for (;;) {
        const m = await s.client.next(20_000);
        if (m === CLOSED) break;
        got.push(m);
        if (m.type === 'Z') break;
      }
      expect(leaks(wireText(got))).toBeUndefined();
      if (!s.client.destroyed && got.at(-1)?.type === 'Z') await expectUsable(s);
    });
  });
});

describe('SQL cursors', () => {
  it('SCROLL cursor with MOVE, FETCH BACKWARD, PRIOR, ABSOLUTE and LAST', async () => {
    const ci = await f.connect('read', f.tokens.ci);
    await ci.query('begin');
    await ci.query(`declare sc scroll cursor for select id, email, password, api_key, card from ${S()}.users order by id`);
    const out: pg.QueryResult[] = [];
    for (const q of ['move forward 10 in sc', 'fetch backward 3 from sc', 'fetch prior from sc', 'fetch absolute 20 from sc', 'fetch last from sc', 'fetch relative -2 from sc', 'move absolute 0 in sc', 'fetch all from sc']) {
      out.push(await ci.query(q));
    }
    await ci.query('commit');
    const all = out.flatMap((r) => r.rows);
    expect(all.length).toBeGreaterThan(40);
    expect(leaks(out.map(resultText).join('\n'))).toBeUndefined();
    expect(new Set(all.map((r) => r.password))).toEqual(new Set([REDACTED]));
  });

  it('WITH HOLD cursor fetched after COMMIT, forwards and backwards', async () => {
    const ci = await f.connect('read', f.tokens.ci);
    await ci.query('begin');
    await ci.query(`declare hc scroll cursor with hold for select * from ${S()}.users order by id`);
    await ci.query('commit');
    const a = await ci.query('fetch 5 from hc');
    const b = await ci.query('fetch backward 2 from hc');
    const c = await ci.query('fetch all from hc');
    await ci.query('close hc');
    expect(leaks([a, b, c].map(resultText).join('\n'))).toBeUndefined();
    expect(a.rows[0].email).toBe(hash(f.rows.get(1)!.email));
    expect(a.rows[0].name).toBe(f.rows.get(1)!.name);
  });

  it('FETCH through the extended protocol with a Describe of the portal', async () => {
    await withSession(open(), async (s) => {
      await roundTrip(s, serialize.query(`begin; declare xc cursor for select id, email, password, note from ${S()}.users order by id`));
      const got = await roundTrip(
        s,
        serialize.parse({ name: '', text: 'fetch 7 from xc', types: [] }),
        serialize.bind({ statement: '', portal: 'fp' }),
        serialize.describe({ type: 'P', name: 'fp' }),
        serialize.execute({ portal: 'fp', rows: 3 }),
        serialize.execute({ portal: 'fp', rows: 0 }),
        serialize.parse({ name: '', text: 'fetch 3 from xc', types: [] }),
        serialize.bind({ statement: '', portal: '' }),
        serialize.execute({ portal: '' }),
        serialize.sync(),
      );
      expect(leaks(wireText(got))).toBeUndefined();
      expect(dataRows(got)).toHaveLength(10);
      expect(textRows(got)[0]).toEqual(['1', hash(f.rows.get(1)!.email), REDACTED, f.rows.get(1)!.note]);
      await roundTrip(s, serialize.query('commit'));
      await expectUsable(s);
    });
  });
});

describe('writes that return or echo masked values (write grant)', () => {
  it('INSERT, UPDATE and DELETE ... RETURNING masked columns come back masked', async () => {
    const ci = await f.connect('write', f.tokens.ci);
    const ins = await ci.query(
      `insert into ${S()}.users (id, name, email, password, api_key, card) values (2001, 'probe', 'probe-written@example.com', 'probe-written-pw-1', 'probe_key', '4111 1111 1111 1111') returning *`,
    );
    expect(ins.rows[0]).toMatchObject({ id: 2001, email: hash('probe-written@example.com'), password: REDACTED, api_key: null, card: '****1111' });
    const upd = await ci.query(`update ${S()}.users set name = 'probe2' where id = 2001 returning password as p, email, card c`);
    const del = await ci.query(`delete from ${S()}.users where id = 2001 returning email, password, api_key`);
    expect(leaks([ins, upd, del].map(resultText).join('\n'))).toBeUndefined();
    expect(del.rows).toEqual([{ email: hash('probe-written@example.com'), password: REDACTED, api_key: null }]);
  });

  it('ON CONFLICT DO UPDATE RETURNING masks; conditions and copies over masked columns are refused', async () => {
    const ci = await f.connect('write', f.tokens.ci);
    const up = await ci.query(`insert into ${S()}.users (id, name) values (9, 'x9') on conflict (id) do update set name = excluded.name returning id, email, password, ${S()}.users.card`);
    expect(up.rows).toEqual([{ id: 9, email: hash(f.rows.get(9)!.email), password: REDACTED, card: '****0004' }]);
    for (const sql of [
      `insert into ${S()}.users (id, name) values (10, 'x') on conflict (id) do update set note = ${S()}.users.password returning note`,
      `insert into ${S()}.users (id, name) values (10, 'x') on conflict (id) do update set name = 'y' where ${S()}.users.password like 'pw-1%' returning id`,
    ]) {
      const err = await ci.query(sql).catch((e) => e);
      expect(err.code, sql).toBe('42501');
    }
    expect(leaks(resultText(up))).toBeUndefined();
    await f.su.query(`update ${S()}.users set name = 'User 9', note = 'plain note 9' where id = 9`);
  });

  it('RETURNING from a json/array table masks the jsonb and array values', async () => {
    const ci = await f.connect('write', f.tokens.ci);
    const got = await ci.query(`update ${S()}.docs set amount = amount where id = 1 returning *`);
    expect(leaks(resultText(got))).toBeUndefined();
    expect(got.rows[0]).toMatchObject({ id: 1, profile: null, api_key: null, pin: null });
  });

  it('a trigger RAISE NOTICE and RAISE EXCEPTION quoting NEW/OLD values, fired by a write through Sluice', async () => {
    const ci = await f.connect('write', f.tokens.ci);
    const notices: string[] = [];
    ci.on('notice', (n) => notices.push(errorText(n as never)));
    await ci.query(`update ${S()}.users set name = name where id = 11`);
    const err = await ci.query(`update ${S()}.users set name = 'boom' where id = 12`).catch((e) => e);
    expect(err.code).toBe('P0001');
    expect(notices.length).toBeGreaterThan(0);
    expect(leaks(notices.join('\n') + errorText(err))).toBeUndefined();
    expect((await ci.query('select 1 as ok')).rows).toEqual([{ ok: 1 }]);
  });
});

describe('notifications', () => {
  it('a NOTIFY sent by the superuser with a password and a JWT in its payload reaches a masked listener redacted', async () => {
    await withSession(open(), async (s) => {
      await roundTrip(s, serialize.query('listen probe_chan'));
      await f.su.query(`select pg_notify('probe_chan', $1)`, [`${f.rows.get(13)!.password} ${DOC.jwt} ${DOC.email}`]);
      await f.su.query(`notify probe_chan, '${f.rows.get(14)!.api_key}'`);
      const got = await roundTrip(s, serialize.query('select 1'));
      const more = got.filter((m) => m.type === 'A').length < 2 ? await roundTrip(s, serialize.query('select 1')) : [];
      const all = [...got, ...more];
      expect(all.filter((m) => m.type === 'A')).toHaveLength(2);
      expect(leaks(wireText(all))).toBeUndefined();
    });
  });
});

describe('json, jsonb and array columns created around Sluice', () => {
  it('selects them in text (and all but jsonb in binary), as themselves and with * on the first statement of a session', async () => {
    const ci = await f.connect('read', f.tokens.ci);
    const text = await ci.query(`select * from ${S()}.docs order by id`);
    expect(leaks(resultText(text))).toBeUndefined();
    expect(text.rows[0]).toMatchObject({ id: 1, profile: null, api_key: null, pin: null, token: 'bearer [masked:jwt]', amount: '12.5' });
    expect(text.rows[1]).toEqual({ id: 2, profile: null, api_key: null, token: null, pin: null, amount: null });
    const bin = await f.connect('read', f.tokens.ci, { binary: true } as never);
    const b = await bin.query(`select api_key, token, pin, amount from ${S()}.docs where id = $1`, [1]);
    expect(leaks(resultText(b))).toBeUndefined();
  });

  it('json operators over a detected value are refused or masked, never raw', async () => {
    const ci = await f.connect('read', f.tokens.ci);
    const out: string[] = [];
    for (const sql of [
      `select profile->'owner'->>'email' as e from ${S()}.docs`,
      `select profile #>> '{owner,email}' as e from ${S()}.docs`,
      `select api_key[1] as k from ${S()}.docs`,
      `select unnest(api_key) as k from ${S()}.docs`,
      `select jsonb_pretty(profile) as p from ${S()}.docs`,
    ]) {
      const got = await ci.query(sql).catch((e) => e);
      out.push(got.rows ? resultText(got) : errorText(got));
    }
    expect(leaks(out.join('\n'))).toBeUndefined();
  });
});

describe('shapes of results', () => {
  it('zero-column rows, empty results and NULLs everywhere', async () => {
    const ci = await f.connect('read', f.tokens.ci);
    const zero = await ci.query(`select from ${S()}.users`);
    expect(zero.rowCount).toBe(40);
    const empty = await ci.query(`select email, password from ${S()}.users where false`);
    expect(empty.rows).toEqual([]);
    const nulls = await ci.query(`select null::text as a, email, null::int as b, password from ${S()}.users where id = 2 union all select null, null, null, null where false`).catch((e) => e);
    expect(leaks(nulls.rows ? resultText(nulls) : errorText(nulls))).toBeUndefined();
  });

  it('hundreds of columns, many of them the masked columns under different aliases', async () => {
    const ci = await f.connect('read', f.tokens.ci);
    const cols = Array.from({ length: 400 }, (_, i) => ['email', 'password', 'api_key', 'card', 'id', 'name', 'note'][i % 7] + ` as c${i}`);
    const got = await ci.query(`select ${cols.join(', ')} from ${S()}.users order by id`);
    expect(got.fields).toHaveLength(400);
    expect(leaks(resultText(got))).toBeUndefined();
    expect(got.rows[0].c4).toBe(1);
    expect(got.rows[0].c5).toBe(f.rows.get(1)!.name);
  });

  it('a large result set split across many TCP chunks', async () => {
    await withSession(open(), async (s) => {
      const got = await roundTrip(s, serialize.query(`select u.*, n from ${S()}.users u, generate_series(1, 400) as g(n)`));
      expect(dataRows(got)).toHaveLength(40 * 400);
      expect(leaks(wireText(got))).toBeUndefined();
      await expectUsable(s);
    });
  });

  it('a value just under max_value_bytes with a secret at its very end is still scanned', async () => {
    await f.su.query(`insert into ${S()}.users (id, name, note) values (3001, 'big', repeat('a', 1048576 - 60) || ' mail ${DOC.email}')`);
    try {
      const ci = await f.connect('read', f.tokens.ci);
      const got = await ci.query(`select id, note from ${S()}.users where id = 3001`);
      expect(got.rows).toHaveLength(1);
      expect(leaks(resultText(got))).toBeUndefined();
    } finally {
      await f.su.query(`delete from ${S()}.users where id = 3001`);
    }
  });
});

describe('COPY options', () => {
  const copies = [
    ['csv with FORCE_QUOTE *', () => `copy ${S()}.users (email, password, card) to stdout with (format csv, force_quote *)`],
    ['a delimiter of |, NULL x and HEADER', () => `copy ${S()}.users to stdout with (format csv, delimiter '|', null 'x', header)`],
    ['text with @ as delimiter, escaped inside values', () => `copy ${S()}.users to stdout with (delimiter '@')`],
    ['csv quoting with @ and escape -', () => `copy ${S()}.users (note, email, password) to stdout with (format csv, quote '@', escape '-', force_quote (email))`],
    ['text with NULL as a secret-looking string', () => `copy ${S()}.users (password, email) to stdout with (null 'pw-1-correct-hors')`],
    ['binary of the json table without its jsonb column', () => `copy ${S()}.docs (id, api_key, token, pin, amount) to stdout with (format binary)`],
    ['csv of the json table', () => `copy ${S()}.docs to stdout with (format csv)`],
    ['a partition of a partitioned table', () => `copy ${S()}.parts_1 to stdout`],
  ] as const;

  it.each(copies)('%s is masked', async (_what, sql) => {
    const run = await psql(f.t, f.t.url('read'), f.tokens.ci, ['-c', sql()]);
    expect(leaks(run.stdout + run.stderr)).toBeUndefined();
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
  });

  it.each([
    ['a view, which PostgreSQL refuses', () => `copy ${S()}.users_v to stdout`],
    ['a partitioned table, which PostgreSQL refuses', () => `copy ${S()}.parts to stdout`],
    ['a query over a view', () => `copy (select * from ${S()}.users_v) to stdout`],
  ] as const)('%s fails without a raw value', async (_what, sql) => {
    const run = await psql(f.t, f.t.url('read'), f.tokens.ci, ['-c', sql()]);
    expect(leaks(run.stdout + run.stderr)).toBeUndefined();
    expect(run.code).not.toBe(0);
  });
});
