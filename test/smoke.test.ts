import { describe, expect, it } from 'vitest';
import pg from 'pg';
import { testPostgres } from './support/pg-env.js';

describe('test cluster', () => {
  it('serves the orders database to the reader role over scram', async () => {
    const env = testPostgres();
    const c = new pg.Client({ host: env.host, port: env.port, database: env.database, ...env.roles.reader });
    await c.connect();
    const r = await c.query('select count(*)::int as n from customers');
    await c.end();
    expect(r.rows[0].n).toBe(100);
  });
});
