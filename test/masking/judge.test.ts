import { beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { validateConfig } from '../../src/config/load.js';
import type { PolicyConfig } from '../../src/config/schema.js';
import type { Principal } from '../../src/identity/principal.js';
import type { CatalogColumn, CatalogRelation, CatalogSnapshot, ColumnLineage } from '../../src/masking/catalog.js';
import { judgeMasking, MASKING_RULE, type MaskVerdict } from '../../src/masking/judge.js';
import { resolveMasking, type MaskedColumns } from '../../src/masking/resolve.js';
import { maskingPlanFor } from '../../src/masking/rules.js';
import { classify, initSqlParser, type StatementFacts } from '../../src/sql/index.js';

const TEXT = 25;
const INT = 23;
const USERS = 16384;
const USERS_V = 16390;
const ORDERS = 16400;

function columns(...cols: [string, number][]): Map<number, CatalogColumn> {
  return new Map(cols.map(([name, typeOid], i) => [i + 1, { name, typeOid }]));
}

const users: CatalogRelation = {
  oid: USERS,
  schema: 'app',
  name: 'users',
  kind: 'table',
  columns: columns(['id', INT], ['name', TEXT], ['email', TEXT], ['password', TEXT]),
};
const usersView: CatalogRelation = {
  oid: USERS_V,
  schema: 'app',
  name: 'users_v',
  kind: 'view',
  columns: columns(['id', INT], ['mail', TEXT], ['lower_email', TEXT], ['name', TEXT]),
  lineage: new Map<number, ColumnLineage>([
    [1, { kind: 'column', relation: USERS, attnum: 1 }],
    [2, { kind: 'column', relation: USERS, attnum: 3 }],
    [3, { kind: 'derived', sources: [{ relation: USERS, attnum: 1 }, { relation: USERS, attnum: 3 }] }],
    [4, { kind: 'column', relation: USERS, attnum: 2 }],
  ]),
};
const orders: CatalogRelation = {
  oid: ORDERS,
  schema: 'app',
  name: 'orders',
  kind: 'table',
  columns: columns(['id', INT], ['user_id', INT], ['total', INT]),
};

const catalog: CatalogSnapshot = {
  relations: new Map([users, usersView, orders].map((r) => [r.oid, r])),
  byName: new Map([users, usersView, orders].map((r) => [`${r.schema}.${r.name}`, r.oid])),
  userFunctions: new Set(['app.leak', 'leak']),
  builtinFunctions: new Set(['lower', 'upper', 'coalesce', 'count', 'max', 'min', 'sum', 'avg', 'md5', 'now', 'length', 'position', 'row_number', 'row_to_json', 'to_json', 'to_jsonb', 'json_agg', 'string_agg', 'array_agg', 'encode', 'decode', 'convert_to', 'substr', 'concat', 'format', 'generate_series', 'nextval', 'set_config', 'current_setting', 'pg_sleep', 'abs', 'round', 'date_trunc', 'jsonb_build_object', 'json_build_object', 'rank', 'dense_rank', 'lag', 'lead', 'unnest', 'ascii', 'left', 'right', 'reverse', 'replace', 'trim', 'btrim']),
  searchPath: ['app'],
};

const ci: Principal = { issuer: 'https://idp', subject: 'ci', kind: 'machine', groups: ['ci'], claims: {}, expiresAt: 0 };

function policies(masking: Record<string, unknown>): PolicyConfig[] {
  return validateConfig({
    server: { tls: { self_signed: true } },
    resources: [{ name: 'appdb', type: 'postgres', upstream: { host: 'db', port: 5432, database: 'app' }, credentials: { read: { user: 'ro', password: '${env:X}' } } }],
    policies: [
      {
        name: 'pii',
        when: { kind: 'machine' },
        resources: ['appdb'],
        masking: {
          columns: [
            { match: ['app.users.email'], strategy: 'partial' },
            { match: ['app.users.password'], strategy: 'redact' },
          ],
          ...masking,
        },
      },
    ],
  }).policies;
}

function masked(masking: Record<string, unknown> = {}): MaskedColumns {
  const plan = maskingPlanFor(policies(masking), ci, 'appdb');
  expect(plan).toBeDefined();
  return resolveMasking(plan!, catalog);
}

function facts(sql: string): StatementFacts[] {
  const c = classify(sql);
  if (!c.ok) throw new Error(`${sql}: ${c.message}`);
  return c.statements;
}

/** EXECUTE as the relay judges it: the prepared statement's body attached. */
function executeWith(body: string): StatementFacts[] {
  const [exec] = facts('EXECUTE p(1)');
  const [prep] = facts(`PREPARE p AS ${body}`);
  return [{ ...exec, opaque: false, body: prep.body! }];
}

type Outcome = 'allow' | 'maskAll' | 'deny';

function outcome(v: MaskVerdict): Outcome {
  if (v.action === 'deny') return 'deny';
  return v.maskAll ? 'maskAll' : 'allow';
}

let denyMode: MaskedColumns;
let maskMode: MaskedColumns;
let allowLeak: MaskedColumns;
let allowLeakPattern: MaskedColumns;

beforeAll(async () => {
  await initSqlParser();
  denyMode = masked();
  maskMode = masked({ indirect: 'mask' });
  allowLeak = masked({ functions: ['app.leak'] });
  allowLeakPattern = masked({ functions: ['le*'] });
});

describe('judgeMasking: reads that return masked columns as themselves', () => {
  it.each([
    'SELECT email FROM users',
    'SELECT email AS e FROM users',
    'SELECT u.email FROM users u',
    'SELECT u.email AS contact, u.password AS secret FROM app.users u',
    'SELECT * FROM users',
    'SELECT u.* FROM users u',
    'SELECT id, name FROM users WHERE name = $1',
    'SELECT email FROM users WHERE id = 1',
    'SELECT email, password FROM app.users ORDER BY id',
    'SELECT email FROM users LIMIT 5 OFFSET 2',
    'SELECT * FROM users_v',
    'SELECT mail FROM users_v WHERE id = 2',
    'SELECT lower_email FROM users_v',
    'SELECT o.total, u.name, u.email FROM orders o JOIN users u ON u.id = o.user_id',
    'SELECT count(*) FROM users',
    'SELECT id FROM users GROUP BY id',
    'SELECT total FROM orders WHERE user_id IN (SELECT id FROM users WHERE name = $1)',
    'SELECT lower(name) FROM users',
    'SELECT 1',
    'SELECT now()',
    "INSERT INTO users (id, email) VALUES (1, 'a@example.com') RETURNING email",
    "INSERT INTO users (id, password) VALUES (1, 'pw')",
    "UPDATE users SET email = 'x@example.com' WHERE id = 1",
    "UPDATE users SET password = 'x' WHERE id = 1 RETURNING password",
    "UPDATE users SET name = 'x' WHERE id = 1",
    'DELETE FROM users WHERE id = 1 RETURNING *',
    'INSERT INTO orders (id, user_id, total) SELECT id, id, 0 FROM users',
    'COPY users TO STDOUT',
    'COPY users (id, email) TO STDOUT',
    'COPY app.users TO STDOUT WITH (FORMAT csv)',
    'DECLARE c CURSOR FOR SELECT email FROM users',
    'EXPLAIN SELECT email FROM users',
    'SELECT email FROM users; SELECT total FROM orders',
    'SELECT total FROM orders WHERE user_id = 3 ORDER BY total',
  ])('allows %s', (sql) => {
    expect(judgeMasking(facts(sql), denyMode)).toEqual({ action: 'allow', maskAll: false });
    expect(judgeMasking(facts(sql), maskMode)).toEqual({ action: 'allow', maskAll: false });
  });

  it('judges a PREPARE by its body: a direct select is allowed, a computed one follows the mode', () => {
    for (const sql of ['PREPARE p AS SELECT email FROM users', 'PREPARE p AS SELECT * FROM users']) {
      expect(judgeMasking(facts(sql), masked())).toEqual({ action: 'allow', maskAll: false });
    }
    expect(judgeMasking(facts('PREPARE p AS SELECT lower(email) FROM users'), masked()).action).toBe('deny');
    // Not even in mask mode: the body may later run through a portal the output decision does not reach.
    expect(judgeMasking(facts('PREPARE p AS SELECT lower(email) FROM users'), masked({ indirect: 'mask' })).action).toBe('deny');
  });

  it('allows EXECUTE of a prepared direct select', () => {
    expect(judgeMasking(executeWith('SELECT email FROM users WHERE id = $1'), denyMode)).toEqual({ action: 'allow', maskAll: false });
  });

  it.each([
    ['SELECT app.leak(id) FROM users', () => allowLeak],
    ['SELECT leak(id), email FROM users', () => allowLeak],
    ['SELECT leak(1)', () => allowLeakPattern],
    ['SELECT app.leak(id) FROM users', () => allowLeakPattern],
  ])('allows allow-listed function calls: %s', (sql, m) => {
    expect(judgeMasking(facts(sql), m())).toEqual({ action: 'allow', maskAll: false });
  });
});

describe('judgeMasking: masked columns deciding rows or order are always denied', () => {
  it.each([
    ["SELECT id FROM users WHERE email = 'a@example.com'", 'app.users.email', 'a WHERE condition'],
    ["SELECT id FROM users WHERE lower(email) LIKE 'a%'", 'app.users.email', 'a WHERE condition'],
    ['SELECT id FROM users u WHERE u.password IS NOT NULL', 'app.users.password', 'a WHERE condition'],
    ['SELECT id FROM users ORDER BY email', 'app.users.email', 'ORDER BY'],
    ['SELECT id, email FROM users ORDER BY 2', 'app.users.email', 'ORDER BY'],
    ['SELECT id, email AS e FROM users ORDER BY e', 'app.users.email', 'ORDER BY'],
    ['SELECT id FROM users ORDER BY lower(password)', 'app.users.password', 'ORDER BY'],
    ['SELECT password, count(*) FROM users GROUP BY password', 'app.users.password', 'GROUP BY'],
    ['SELECT email FROM users GROUP BY 1', 'app.users.email', 'GROUP BY'],
    ['SELECT id, row_number() OVER (ORDER BY email) FROM users', 'app.users.email', 'a window'],
    ['SELECT id, count(*) OVER (PARTITION BY password) FROM users', 'app.users.password', ''],
    ['SELECT DISTINCT ON (email) id FROM users', 'app.users.email', 'DISTINCT ON'],
    ["SELECT name FROM users GROUP BY name HAVING max(email) > 'm'", 'app.users.email', 'HAVING'],
    ["SELECT o.id FROM orders o JOIN users u ON u.email = 'x' AND u.id = o.user_id", 'app.users.email', 'a JOIN condition'],
    ["SELECT total FROM orders WHERE user_id IN (SELECT id FROM users WHERE email LIKE 'a%')", 'app.users.email', ''],
    ["SELECT total FROM orders o WHERE EXISTS (SELECT 1 FROM users u WHERE u.id = o.user_id AND u.password = 'x')", 'app.users.password', ''],
    ["SELECT * FROM (SELECT id FROM users WHERE email = 'a') s", 'app.users.email', ''],
    ["WITH x AS (SELECT id FROM users WHERE password = 'p') SELECT * FROM x", 'app.users.password', ''],
    ["SELECT id FROM users WHERE id = 1 UNION SELECT id FROM users WHERE email = 'a'", 'app.users.email', ''],
    ['SELECT (SELECT count(*) FROM users u WHERE u.email = o.id::text) FROM orders o', 'app.users.email', ''],
    ["SELECT id FROM users_v WHERE mail = 'a'", 'app.users_v.mail', 'a WHERE condition'],
    ["SELECT id FROM users_v ORDER BY lower_email", 'app.users_v.lower_email', 'ORDER BY'],
    ["UPDATE users SET name = 'x' WHERE email = 'a'", 'app.users.email', 'a WHERE condition'],
    ["DELETE FROM users WHERE password = 'p'", 'app.users.password', 'a WHERE condition'],
    ["EXPLAIN SELECT id FROM users WHERE email = 'a'", 'app.users.email', 'a WHERE condition'],
    ["COPY (SELECT id FROM users WHERE email = 'a') TO STDOUT", 'app.users.email', 'a WHERE condition'],
    ["DECLARE c CURSOR FOR SELECT id FROM users WHERE password = 'p'", 'app.users.password', 'a WHERE condition'],
    ["SELECT 1; SELECT id FROM users WHERE email = 'a'", 'app.users.email', 'a WHERE condition'],
    ["PREPARE p AS SELECT id FROM users WHERE email = $1", 'app.users.email', 'a WHERE condition'],
  ])('denies %s', (sql, column, words) => {
    for (const m of [denyMode, maskMode]) {
      const v = judgeMasking(facts(sql), m);
      expect(v.action, sql).toBe('deny');
      if (v.action !== 'deny') continue;
      expect(v).toMatchObject({ rule: MASKING_RULE, sqlstate: '42501' });
      expect(v.reason).toContain(`masked column ${column}`);
      expect(v.reason).toContain(words);
      expect(v.reason).toContain('cannot decide which rows return');
      expect(v.reason).toContain('masking policy pii');
    }
  });

  it('denies EXECUTE of a prepared statement that filters on a masked column, in both modes', () => {
    for (const m of [denyMode, maskMode]) {
      const v = judgeMasking(executeWith('SELECT id FROM users WHERE email = $1'), m);
      expect(v.action).toBe('deny');
      expect(v.action === 'deny' && v.reason).toContain('app.users.email in a WHERE condition');
    }
  });
});

describe('judgeMasking: indirect reads', () => {
  const outputOnly: [string, string][] = [
    ['SELECT lower(email) FROM users', 'app.users.email in an expression'],
    ['SELECT email::varchar FROM users', 'app.users.email in an expression'],
    ["SELECT email || '' FROM users", 'app.users.email in an expression'],
    ['SELECT md5(password) FROM users', 'app.users.password in an expression'],
    ['SELECT max(email) FROM users', 'app.users.email in an expression'],
    ['SELECT row_to_json(u) FROM users u', 'app.users.'],
    ['SELECT u FROM users u', 'app.users.email in a whole-row reference'],
    ['SELECT * FROM (SELECT email FROM users) s', 'app.users.email in a derived table'],
    ['WITH x AS (SELECT email FROM users) SELECT * FROM x', 'app.users.email in a WITH query'],
    ['SELECT (SELECT email FROM users LIMIT 1)', 'app.users.email in a scalar subquery'],
    ['SELECT upper(mail) FROM users_v', 'app.users_v.mail in an expression'],
    ['COPY (SELECT email FROM users) TO STDOUT', 'app.users.email'],
    ['EXPLAIN ANALYZE SELECT lower(email) FROM users', 'app.users.email in an expression'],
    ['DECLARE c CURSOR FOR SELECT lower(email) FROM users', 'app.users.email in an expression'],
  ];

  it.each(outputOnly)('denies %s in deny mode, naming the column and policy', (sql, what) => {
    const v = judgeMasking(facts(sql), denyMode);
    expect(v.action).toBe('deny');
    if (v.action !== 'deny') return;
    expect(v).toMatchObject({ rule: MASKING_RULE, sqlstate: '42501' });
    expect(v.reason).toContain(`reads masked column ${what}`);
    expect(v.reason).toContain('masking policy pii');
  });

  it.each(outputOnly.filter(([sql]) => !sql.startsWith('DECLARE')))('masks every column of %s in mask mode', (sql) => {
    expect(judgeMasking(facts(sql), maskMode)).toEqual({ action: 'allow', maskAll: true });
  });

  it('masks every column of an EXECUTE whose body computes over a masked column in mask mode', () => {
    expect(outcome(judgeMasking(executeWith('SELECT lower(email) FROM users'), denyMode))).toBe('deny');
    expect(judgeMasking(executeWith('SELECT lower(email) FROM users'), maskMode)).toEqual({ action: 'allow', maskAll: true });
  });

  it.each([
    ['CREATE TABLE t AS SELECT email FROM users', 'app.users.email in a query whose rows are stored'],
    ['CREATE TABLE t AS SELECT id FROM users', undefined],
    ['INSERT INTO users (id, name) SELECT id, email FROM users', 'app.users.email in a query whose rows are stored'],
    ['SELECT email INTO t FROM users', 'app.users.email in a query whose rows are stored'],
    ['WITH d AS (DELETE FROM users RETURNING email) SELECT * FROM d', 'app.users.'],
    ['CREATE VIEW v AS SELECT email FROM users', 'app.users.email'],
    ['UPDATE users SET name = email WHERE id = 1', 'app.users.email in an expression'],
    ['UPDATE users SET name = (SELECT password FROM users WHERE id = 2) WHERE id = 1', 'app.users.password in a subquery of SET'],
    ['INSERT INTO orders (id, user_id, total) SELECT id, id, length(password) FROM users', 'app.users.password'],
  ])('denies %s in both modes since it writes', (sql, what) => {
    for (const m of [denyMode, maskMode]) {
      const v = judgeMasking(facts(sql), m);
      if (what === undefined) {
        expect(v).toEqual({ action: 'allow', maskAll: false });
        continue;
      }
      expect(v.action, sql).toBe('deny');
      expect(v.action === 'deny' && v.reason).toContain(`reads masked column ${what}`);
    }
  });
});

describe('judgeMasking: functions and statements masking cannot see into', () => {
  it.each([
    'SELECT leak(id) FROM users',
    'SELECT app.leak(1)',
    'SELECT "app"."leak"(1)',
    'SELECT id FROM users WHERE app.leak(id) IS NOT NULL',
    'SELECT * FROM app.leak(1)',
    'SELECT LEAK(1)',
  ])('denies %s in both modes: its result can be filtered or made to fail on values masking never sees', (sql) => {
    for (const mode of [denyMode, maskMode]) {
      const v = judgeMasking(facts(sql), mode);
      expect(v.action).toBe('deny');
      expect(v.action === 'deny' && v.reason).toMatch(/user-defined function (app\.)?leak, which could read masked columns/);
      expect(v.action === 'deny' && v.reason).toContain('masking policy pii');
    }
  });

  it('denies a set operation over a masked column in both modes: INTERSECT and EXCEPT compare values', () => {
    for (const sql of ['SELECT email FROM users UNION SELECT name FROM users', "SELECT email FROM users INTERSECT SELECT 'a@b.c'"]) {
      for (const mode of [denyMode, maskMode]) {
        const v = judgeMasking(facts(sql), mode);
        expect(v.action === 'deny' && v.reason).toContain('app.users.email in a UNION, INTERSECT or EXCEPT');
      }
    }
  });

  it('denies reading planner statistics, which hold sampled values of masked columns', () => {
    for (const sql of ["SELECT histogram_bounds FROM pg_stats WHERE attname = 'email'", 'SELECT * FROM pg_catalog.pg_statistic']) {
      const v = judgeMasking(facts(sql), denyMode);
      expect(v.action === 'deny' && v.reason).toContain('sampled values of every column');
    }
  });

  it('judges a relation the catalog has not seen by name against the patterns', () => {
    const v = judgeMasking(facts("SELECT id FROM app.late WHERE email LIKE 'a%'"), masked({ columns: [{ match: ['app.*.email'] }] }));
    expect(v.action === 'deny' && v.reason).toContain('app.late.email in a WHERE condition');
    expect(judgeMasking(facts('SELECT upper(email) FROM late'), masked({ columns: [{ match: ['*.late.email'] }] })).action).toBe('deny');
    expect(judgeMasking(facts('SELECT email FROM late'), masked({ columns: [{ match: ['*.late.email'] }] }))).toEqual({ action: 'allow', maskAll: false });
  });

  it('refuses COPY TO with another output encoding, whose bytes masking cannot parse safely', () => {
    const v = judgeMasking(facts("COPY users TO STDOUT WITH (ENCODING 'SJIS')"), denyMode);
    expect(v.action === 'deny' && v.reason).toContain('COPY ... ENCODING');
    expect(judgeMasking(facts('COPY users TO STDOUT'), denyMode)).toEqual({ action: 'allow', maskAll: false });
  });

  it('allows COPY FROM into masked columns: it writes what the caller sends', () => {
    for (const sql of ['COPY users (id, name, email, password) FROM STDIN', 'COPY users FROM STDIN', "COPY users FROM STDIN WHERE email LIKE 'a%'"]) {
      expect(judgeMasking(facts(sql), denyMode), sql).toEqual({ action: 'allow', maskAll: false });
    }
  });

  it('treats a function the catalog has never seen as user-defined', () => {
    const v = judgeMasking(facts('SELECT app.created_later(1)'), denyMode);
    expect(v.action === 'deny' && v.reason).toContain('user-defined function app.created_later');
  });

  it('denies a user-defined function in a write in both modes, unless allow-listed', () => {
    const sql = 'INSERT INTO orders (id, user_id, total) VALUES (1, 1, app.leak(1))';
    expect(outcome(judgeMasking(facts(sql), denyMode))).toBe('deny');
    expect(outcome(judgeMasking(facts(sql), maskMode))).toBe('deny');
    expect(outcome(judgeMasking(facts(sql), allowLeak))).toBe('allow');
  });

  it('does not allow-list a function of another schema by a qualified pattern', () => {
    const other = resolveMasking(maskingPlanFor(policies({ functions: ['other.leak'] }), ci, 'appdb')!, catalog);
    expect(outcome(judgeMasking(facts('SELECT app.leak(1)'), other))).toBe('deny');
  });

  it.each(['DO $$ BEGIN PERFORM 1; END $$', 'CALL pg_catalog.refresh()', 'EXECUTE p(1)'])('treats %s as opaque', (sql) => {
    const v = judgeMasking(facts(sql), denyMode);
    expect(v.action).toBe('deny');
    expect(v.action === 'deny' && v.reason).toContain('cannot be read from its text');
  });

  it('masks an EXECUTE of an unknown prepared statement whole in mask mode, but never DO or CALL', () => {
    expect(judgeMasking(facts('EXECUTE p(1)'), maskMode)).toEqual({ action: 'allow', maskAll: true });
    expect(outcome(judgeMasking(facts('DO $$ BEGIN PERFORM 1; END $$'), maskMode))).toBe('deny');
    expect(outcome(judgeMasking(facts('CALL app.refresh()'), maskMode))).toBe('deny');
  });

  it('leaves statements over unmasked data alone when the plan masks nothing in this catalog, but still refuses user-defined functions', () => {
    const none = resolveMasking(maskingPlanFor(policies({ columns: [{ match: ['app.nothing.here'] }] }), ci, 'appdb')!, catalog);
    expect(judgeMasking(facts("SELECT id FROM users WHERE email = 'a'"), none)).toEqual({ action: 'allow', maskAll: false });
    // The masked table may be created after the catalog was read, and a function could read it.
    expect(judgeMasking(facts('SELECT app.leak(1)'), none).action).toBe('deny');
  });
});

describe('judgeMasking: wrapped masked columns (property)', () => {
  const wrappers = [(x: string) => `lower(${x})`, (x: string) => `${x}::text`, (x: string) => `${x} || ''`, (x: string) => `md5(${x})`, (x: string) => `coalesce(${x}, '')`];
  const positions = [
    (e: string) => `SELECT ${e} FROM users`,
    (e: string) => `SELECT id FROM users WHERE ${e} = 'a'`,
    (e: string) => `SELECT id FROM users ORDER BY ${e}`,
    (e: string) => `SELECT count(*) FROM users GROUP BY ${e}`,
    (e: string) => `SELECT name FROM users GROUP BY name HAVING max(${e}) > 'a'`,
    (e: string) => `SELECT o.id FROM orders o JOIN users ON ${e} = o.id::text`,
    (e: string) => `SELECT (SELECT ${e} FROM users LIMIT 1)`,
    (e: string) => `SELECT total FROM orders WHERE user_id IN (SELECT id FROM users WHERE ${e} = 'a')`,
  ];

  it('never allows them without masking the whole result', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('email', 'password', 'users.email', 'users.password'),
        fc.constantFrom(...wrappers),
        fc.constantFrom(...positions),
        fc.boolean(),
        (column, wrap, position, mask) => {
          const sql = position(wrap(column));
          const v = judgeMasking(facts(sql), mask ? maskMode : denyMode);
          return v.action === 'deny' || v.maskAll;
        },
      ),
      { numRuns: 300 },
    );
  });
});
