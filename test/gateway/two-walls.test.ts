import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pgClient } from '../support/clients.js';
import { startGateway, type TestGateway } from '../support/gateway.js';
import { testPostgres } from '../support/pg-env.js';

/**
 * Defense in depth: the guard and the grant's backend role each hold on their
 * own. Here the `read` grant is (mis)configured with the writer's backend
 * role, so only the guard stands between a read session and a write; and
 * the reader role, used directly, shows the database refuses by itself.
 */
let t: TestGateway;
let su: pg.Client;
const table = `walls_${randomUUID().slice(0, 8)}`;

beforeAll(async () => {
  const env = testPostgres();
  t = await startGateway((c) => {
    c.resources[0].credentials.read = { user: env.roles.writer.user, password: '${env:SLUICE_TEST_WRITER_PW}' };
  });
  su = new pg.Client({ host: env.host, port: env.port, user: env.superuser.user, password: env.superuser.password, database: env.database });
  await su.connect();
  await su.query(`create table ${table} (id int primary key)`);
  await su.query(`insert into ${table} select generate_series(1, 5)`);
  await su.query(`grant select on ${table} to ${env.roles.reader.user}`);
  await su.query(`grant select, insert, update, delete on ${table} to ${env.roles.writer.user}`);
});
afterAll(async () => {
  await su?.query(`drop table if exists ${table}`).catch(() => undefined);
  await su?.end();
  await t?.stop();
});

async function rows(): Promise<number> {
  return (await su.query<{ n: number }>(`select count(*)::int as n from ${table}`)).rows[0].n;
}

describe('two walls', () => {
  it('the guard alone stops a write in a read session whose backend role could write', async () => {
    const c = await pgClient(t, 'read', await t.token('alice', ['dba']));
    try {
      expect((await c.query('select current_user as u')).rows[0].u).toBe(testPostgres().roles.writer.user);
      for (const sql of [`delete from ${table}`, `update ${table} set id = id + 100`, `insert into ${table} values (99)`, `with d as (delete from ${table} returning *) select count(*) from d`]) {
        await expect(c.query(sql)).rejects.toMatchObject({ code: '42501', message: expect.stringContaining('needs grant write; this session has grant read') });
      }
      expect((await c.query(`select count(*)::int as n from ${table}`)).rows[0].n).toBe(5);
    } finally {
      await c.end();
    }
    expect(await rows()).toBe(5);
  });

  it('the backend role alone refuses what the guard would stop, without Sluice in the way', async () => {
    const env = testPostgres();
    const direct = new pg.Client({ host: env.host, port: env.port, database: env.database, ...env.roles.reader });
    await direct.connect();
    try {
      for (const sql of [`delete from ${table}`, `drop table ${table}`, `insert into ${table} values (99)`]) {
        await expect(direct.query(sql)).rejects.toMatchObject({ code: expect.stringMatching(/^42501$|^42809$/) });
      }
    } finally {
      await direct.end();
    }
    expect(await rows()).toBe(5);
  });
});
