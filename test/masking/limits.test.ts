import { serialize } from 'pg-protocol';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { maskText, REDACTED } from '../../src/masking/strategies.js';
import { errorFields, openSession } from '../support/raw-client.js';
import { withSession } from './wire-helpers.js';
import { startMaskingFixture, type MaskingFixture } from './fixture.js';

/**
 * The bounds of masking through the real gateway: values too large to
 * scan, messages too large to hold, a reload that changes the plan, and a
 * table created around Sluice after the session looked at the catalog.
 */
let f: MaskingFixture;
/** The configuration the gateway started with, as written to its file (reload tests derive from it). */
let started: Record<string, any>;

const pii = (cfg: Record<string, any>) => cfg.policies.find((p: { name: string }) => p.name === 'pii');

beforeAll(async () => {
  f = await startMaskingFixture((cfg) => {
    pii(cfg).masking.max_value_bytes = 1024;
    cfg.server.postgres.max_message_bytes = 65536;
    started = cfg;
  });
});
afterEach(async () => {
  await f.closeClients();
});
afterAll(async () => {
  await f?.stop();
});

describe('a value larger than max_value_bytes', () => {
  it('is masked whole for the masked principal, never scanned or passed through, and raw for the DBA', async () => {
    const big = `${'a'.repeat(2000)} reach me at secret.person@example.com ${'b'.repeat(3000)}`.slice(0, 5000);
    expect(big).toContain('secret.person@example.com');
    expect(big).toHaveLength(5000);
    await f.su.query(`update ${f.schema}.users set note = $1 where id = 11`, [big]);
    // A small value in the same column is still scanned, so only the size decides.
    const small = 'short note with small.person@example.com inside';
    await f.su.query(`update ${f.schema}.users set note = $1 where id = 12`, [small]);

    const ci = await f.connect('read', f.tokens.ci);
    const got = await ci.query(`select id, note from ${f.schema}.users where id in (11, 12) order by id`);
    expect(got.rows).toEqual([
      { id: 11, note: REDACTED },
      { id: 12, note: 'short note with [masked:email] inside' },
    ]);

    const dba = await f.connect('read', f.tokens.dba);
    const raw = await dba.query(`select id, note from ${f.schema}.users where id in (11, 12) order by id`);
    expect(raw.rows).toEqual([
      { id: 11, note: big },
      { id: 12, note: small },
    ]);
  });

  it('a large value of a masked column is masked by its strategy like any other', async () => {
    const long = `${'p'.repeat(3000)}-long-password`;
    await f.su.query(`update ${f.schema}.users set password = $1, email = $2 where id = 13`, [long, `${'e'.repeat(3000)}@example.com`]);
    const ci = await f.connect('read', f.tokens.ci);
    const got = await ci.query(`select email, password from ${f.schema}.users where id = 13`);
    const key = f.t.gw.keyring.secret('masking');
    expect(got.rows).toEqual([{ email: maskText(`${'e'.repeat(3000)}@example.com`, { strategy: 'hash' }, key), password: REDACTED }]);
  });
});

describe('a result message larger than server.postgres.max_message_bytes', () => {
  /** The audit record of a session ended because a result message was too large to hold for masking. */
  async function terminatedForSize(marker: string): Promise<Record<string, unknown>> {
    return vi.waitFor(() => {
      const started = f.t.gw.store.query({ types: ['statement.started'], text: marker, limit: 1 });
      expect(started).toHaveLength(1);
      const ended = f.t.gw.store.query({ types: ['session.terminated'], sessionId: started[0]!.sessionId, limit: 5 });
      expect(ended).toHaveLength(1);
      return ended[0]!.data as Record<string, unknown>;
    });
  }

  it('ends the masked session before any of it reaches the client', async () => {
    await withSession(openSession(f.t.host, f.t.port, { user: 'read', database: 'orders' }, f.tokens.ci), async (s) => {
      s.client.write(serialize.query(`select 'head-marker' || repeat('x', 100000) as big /* big-row-raw */`));
      const msgs = await s.client.untilClosed(15_000);
      expect(msgs.some((m) => m.type === 'D')).toBe(false);
      const fatal = msgs.find((m) => m.type === 'E');
      expect(fatal && errorFields(fatal)).toMatchObject({ S: 'FATAL', C: '54000' });
      expect(fatal && errorFields(fatal).M).toMatch(/larger than Sluice can hold to mask/);
      const all = Buffer.concat(msgs.map((m) => m.payload)).toString('latin1');
      expect(all).not.toContain('head-marker');
      expect(all).not.toContain('x'.repeat(64));
    });
    const ended = await terminatedForSize('big-row-raw');
    expect(ended.reason).toBe('masked_message_too_large');
    expect(JSON.stringify(ended)).not.toContain('xxxx');
  });

  it('through pg the query fails, nothing of the value arrives, and the session is gone', async () => {
    const ci = await f.connect('read', f.tokens.ci);
    const err = await ci.query(`select repeat('x', 100000) as big /* big-row-pg */`).catch((e) => e);
    expect(err.code).toBe('54000');
    expect(JSON.stringify({ m: err.message, d: err.detail })).not.toContain('xxxx');
    const after = await ci.query('select 1').catch((e) => e);
    expect(after).toBeInstanceOf(Error);
    expect((await terminatedForSize('big-row-pg')).reason).toBe('masked_message_too_large');
  });

  it('an unmasked (DBA) session receives the large row', async () => {
    const dba = await f.connect('read', f.tokens.dba);
    const got = await dba.query(`select repeat('x', 100000) as big`);
    expect(got.rows[0].big).toBe('x'.repeat(100000));
    expect((await dba.query('select 1 as ok')).rows).toEqual([{ ok: 1 }]);
  });

  it('a large COPY row ends the masked session too', async () => {
    await withSession(openSession(f.t.host, f.t.port, { user: 'read', database: 'orders' }, f.tokens.ci), async (s) => {
      s.client.write(serialize.query(`copy (select 'copy-marker' || repeat('y', 100000)) to stdout /* big-copy */`));
      const msgs = await s.client.untilClosed(15_000);
      expect(msgs.some((m) => m.type === 'd')).toBe(false);
      expect(errorFields(msgs.find((m) => m.type === 'E'))).toMatchObject({ S: 'FATAL', C: '54000' });
      expect(Buffer.concat(msgs.map((m) => m.payload)).toString('latin1')).not.toContain('copy-marker');
    });
    expect((await terminatedForSize('big-copy')).reason).toBe('masked_message_too_large');
  });
});

describe('a table created around Sluice', () => {
  it('is masked on the first select through Sluice after the session already ran queries', async () => {
    const ci = await f.connect('read', f.tokens.ci);
    const before = await ci.query(`select id, name from ${f.schema}.users where id = 1`);
    expect(before.rows).toEqual([{ id: 1, name: 'User 1' }]);
    const env = f.t.pg;
    await f.su.query(`
      create table ${f.schema}.late (id int, api_key text, label text);
      insert into ${f.schema}.late values (1, 'late_secret_key_value', 'plain label');
      grant select on ${f.schema}.late to ${env.roles.reader.user};
    `);
    // The first result names a relation the snapshot does not know: masked whole while the catalog reloads.
    const first = await ci.query(`select * from ${f.schema}.late`);
    expect(first.rows).toHaveLength(1);
    expect(first.rows[0].api_key === null || first.rows[0].api_key === REDACTED).toBe(true);
    expect(JSON.stringify(first.rows)).not.toContain('late_secret');
    const got = await ci.query(`select * from ${f.schema}.late`);
    expect(got.rows).toEqual([{ id: 1, api_key: null, label: 'plain label' }]);
    const indirect = await ci.query(`select upper(api_key) from ${f.schema}.late`).catch((e) => e);
    expect(indirect.code).toBe('42501');
    const dba = await f.connect('read', f.tokens.dba);
    expect((await dba.query(`select api_key from ${f.schema}.late`)).rows).toEqual([{ api_key: 'late_secret_key_value' }]);
  });
});

describe('a reload that changes the masking policy', () => {
  it('ends open masked sessions with 57P01, and a new session masks with the new plan', async () => {
    const r = f.rows.get(2)!;
    const ci = await f.connect('read', f.tokens.ci);
    expect((await ci.query(`select password, name from ${f.schema}.users where id = 2`)).rows).toEqual([{ password: REDACTED, name: r.name }]);
    const ended = new Promise<Error & { code?: string }>((resolve) => ci.once('error', resolve));
    const dba = await f.connect('read', f.tokens.dba);

    const next = structuredClone(started);
    pii(next).masking.columns.push({ match: [`${f.schema}.users.name`], strategy: 'redact' });
    f.t.writeConfig(next);
    const result = await f.t.gw.reload();
    expect(result.ok).toBe(true);

    const err = await ended;
    expect(err.code).toBe('57P01');
    const after = await ci.query('select 1').catch((e) => e);
    expect(after).toBeInstanceOf(Error);
    // The exempt session's plan did not change: it stays open.
    expect((await dba.query(`select name from ${f.schema}.users where id = 2`)).rows).toEqual([{ name: r.name }]);

    const fresh = await f.connect('read', f.tokens.ci);
    expect((await fresh.query(`select password, name from ${f.schema}.users where id = 2`)).rows).toEqual([{ password: REDACTED, name: REDACTED }]);
    const denied = await fresh.query(`select id from ${f.schema}.users where name = 'User 2'`).catch((e) => e);
    expect(denied.code).toBe('42501');

    f.t.writeConfig(started);
    expect((await f.t.gw.reload()).ok).toBe(true);
  });
});
