import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { pgClient } from '../support/clients.js';
import { startGateway, type TestGateway } from '../support/gateway.js';
import { testPostgres } from '../support/pg-env.js';

/**
 * A gateway with a masking policy over a `users` table in a schema of its
 * own (so parallel test files never share it), rows with known raw values,
 * a view, a user-defined function, and tokens for a masked CI machine, a
 * masked developer and an exempt DBA.
 */
export interface MaskingFixture {
  readonly t: TestGateway;
  readonly su: pg.Client;
  readonly schema: string;
  /** Raw rows as the database holds them, by id. */
  readonly rows: ReadonlyMap<number, UserRow>;
  readonly tokens: { readonly ci: string; readonly dev: string; readonly dba: string };
  connect(grant: string, token: string, opts?: Partial<pg.ClientConfig>): Promise<pg.Client>;
  /** Ends the clients `connect` opened, so tests stay under the per-principal session limit. */
  closeClients(): Promise<void>;
  stop(): Promise<void>;
}

export interface UserRow {
  id: number;
  name: string;
  email: string;
  password: string;
  api_key: string;
  card: string;
  note: string;
  balance: string;
}

export const ROWS = 40;

export function userRow(i: number): UserRow {
  return {
    id: i,
    name: `User ${i}`,
    email: `user${i}@example.com`,
    password: `pw-${i}-correct-horse`,
    api_key: `key_${i}_${'z'.repeat(10)}`,
    card: i % 2 === 0 ? '4111 1111 1111 1111' : '5500-0000-0000-0004',
    note: i % 5 === 0 ? `call me at ops${i}@corp.example.org please` : `plain note ${i}`,
    balance: `${i * 10}.50`,
  };
}

export async function startMaskingFixture(extra?: (cfg: Record<string, any>, schema: string) => void): Promise<MaskingFixture> {
  const schema = `mask_${randomUUID().slice(0, 8)}`;
  const t = await startGateway((cfg) => {
    cfg.policies.push(
      { name: 'ci-write', when: { groups: ['ci'] }, resources: ['orders'], grants: ['read', 'write'] },
      {
        name: 'pii',
        when: {},
        resources: ['orders'],
        masking: {
          exempt: [{ groups: ['dba'] }],
          columns: [
            { match: [`${schema}.users.email`], strategy: 'hash' },
            { match: [`${schema}.users.password`], strategy: 'redact' },
            { match: ['*.*.api_key'], strategy: 'null' },
            { match: [`${schema}.users.card`], strategy: 'partial', keep_last: 4 },
          ],
          detectors: { names: ['email', 'payment_card', 'jwt'] },
        },
      },
    );
    extra?.(cfg, schema);
  });
  const env = testPostgres();
  const su = new pg.Client({ host: env.host, port: env.port, user: env.superuser.user, password: env.superuser.password, database: env.database });
  await su.connect();
  const rows = new Map<number, UserRow>();
  for (let i = 1; i <= ROWS; i++) rows.set(i, userRow(i));
  const roles = [env.roles.reader.user, env.roles.writer.user, env.roles.migrator.user].join(', ');
  await su.query(`
    create schema ${schema};
    create table ${schema}.users (id int primary key, name text not null, email text unique, password text, api_key text, card text, note text, balance numeric);
    create view ${schema}.users_v as select id, email as contact, lower(email) as lower_email, name from ${schema}.users;
    create view ${schema}.users_vv as select contact, name as who from ${schema}.users_v;
    create function ${schema}.leak() returns setof text language sql as 'select email from ${schema}.users';
    grant usage, create on schema ${schema} to ${roles};
    grant select on all tables in schema ${schema} to ${roles};
    grant insert, update, delete on ${schema}.users to ${env.roles.writer.user};
  `);
  for (const r of rows.values()) {
    await su.query(`insert into ${schema}.users values ($1, $2, $3, $4, $5, $6, $7, $8)`, [r.id, r.name, r.email, r.password, r.api_key, r.card, r.note, r.balance]);
  }
  const open: pg.Client[] = [];
  const tokens = {
    ci: await t.token('ci-pipeline', ['ci'], { kind: 'machine' }),
    dev: await t.token('dave', ['dev']),
    dba: await t.token('alice', ['dba']),
  };
  return {
    t,
    su,
    schema,
    rows,
    tokens,
    async connect(grant, token, opts = {}) {
      const c = await pgClient(t, grant, token, opts);
      c.on('error', () => undefined);
      open.push(c);
      return c;
    },
    async closeClients() {
      await Promise.all(open.splice(0).map((c) => c.end().catch(() => undefined)));
    },
    async stop() {
      await Promise.all(open.map((c) => c.end().catch(() => undefined)));
      await su.query(`drop schema if exists ${schema} cascade`).catch(() => undefined);
      await su.end();
      await t.stop();
    },
  };
}
