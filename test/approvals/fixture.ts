import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { ApprovalStatus } from '../../src/approvals/types.js';
import type { Principal } from '../../src/identity/principal.js';
import type { TestGateway } from '../support/gateway.js';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A direct connection as the migrator role (owner of the test database), for setting up tables and checking what really happened. */
export async function migratorClient(t: TestGateway): Promise<pg.Client> {
  const p = t.pg;
  const c = new pg.Client({ host: p.host, port: p.port, user: p.roles.migrator.user, password: p.roles.migrator.password, database: p.database, ssl: { rejectUnauthorized: false } });
  await c.connect();
  return c;
}

/** A statement's error (with its SQLSTATE in `code`); fails when the statement succeeded. */
export function sqlError(p: Promise<unknown>): Promise<{ code?: string; message: string }> {
  return p.then(
    () => {
      throw new Error('expected the statement to fail');
    },
    (err: { code?: string; message: string }) => err,
  );
}

/**
 * Scratch tables and the approval requests statements on them open: each
 * test uses its own table, and finds its request by the table name in the
 * statement text, so tests sharing a gateway never see each other's.
 */
export class HeldStatements {
  constructor(
    private readonly t: TestGateway,
    private readonly admin: pg.Client,
    /** An approver: requests are listed as they see them. */
    private readonly approver: Principal,
    private readonly prefix = 'apr',
  ) {}

  /** A table of `rows` rows (id, note) the write grant may change. */
  async table(rows = 10): Promise<string> {
    const name = `${this.prefix}_${randomBytes(4).toString('hex')}`;
    await this.admin.query(`CREATE TABLE ${name} (id int PRIMARY KEY, note text)`);
    await this.admin.query(`INSERT INTO ${name} SELECT g, 'row ' || g FROM generate_series(1, ${rows}) g`);
    await this.admin.query(`GRANT SELECT, INSERT, UPDATE, DELETE ON ${name} TO ${this.t.pg.roles.writer.user}`);
    return name;
  }

  async count(name: string): Promise<number> {
    return Number((await this.admin.query(`SELECT count(*) AS n FROM ${name}`)).rows[0].n);
  }

  async exists(name: string): Promise<boolean> {
    return (await this.admin.query('SELECT to_regclass($1) AS r', [name])).rows[0].r !== null;
  }

  requests(needle: string, state?: ApprovalStatus['state']): ApprovalStatus[] {
    return this.t.gw.approvals.list(this.approver, state ? { state } : {}).filter((s) => s.request.statement?.text.includes(needle));
  }

  /** The one pending request whose statement mentions `needle`, once it exists. */
  async pendingRequest(needle: string): Promise<ApprovalStatus> {
    for (let i = 0; i < 300; i++) {
      const found = this.requests(needle, 'pending');
      if (found.length === 1) return found[0]!;
      if (found.length > 1) throw new Error(`${found.length} pending requests for ${needle}`);
      await sleep(50);
    }
    throw new Error(`no pending request for ${needle}`);
  }

  /** The request once it reached `want`, or as it is after 10 s. */
  async stateOf(id: string, want: ApprovalStatus['state']): Promise<ApprovalStatus> {
    for (let i = 0; i < 200; i++) {
      const s = this.t.gw.approvals.get(id, this.approver);
      if (s.state === want) return s;
      await sleep(50);
    }
    return this.t.gw.approvals.get(id, this.approver);
  }
}
