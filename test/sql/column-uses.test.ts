import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { classify, initSqlParser, type ColumnUse, type StatementFacts } from '../../src/sql/index.js';

type Use = ColumnUse;

interface Case {
  sql: string;
  /** Uses that must be present. */
  has?: Use[];
  /** The complete list, order ignored. */
  exact?: Use[];
  /** Uses (matched on the given fields) that must not appear. */
  not?: Array<Partial<Use>>;
}

const T = (table: string | undefined, column: string, clause: Use['clause']): Use => (table === undefined ? { column, clause } : { table, column, clause });
const N = (table: string | undefined, column: string, clause: Use['clause'], via: Use['clause']): Use => ({ ...T(table, column, clause), nested: true, via });

const CASES: Case[] = [
  { sql: 'select email from users', exact: [T('users', 'email', 'target')] },
  { sql: 'select email as e from users', exact: [T('users', 'email', 'target')] },
  { sql: 'select u.email from users u', exact: [T('users', 'email', 'target')] },
  { sql: 'select app.users.email from app.users', exact: [T('app.users', 'email', 'target')] },
  { sql: 'select * from users', exact: [T('users', '*', 'target')] },
  { sql: 'select * from users, orders', exact: [T('users', '*', 'target'), T('orders', '*', 'target')] },
  { sql: 'select u.* from users u join orders o on o.uid = u.id', has: [T('users', '*', 'target')], not: [{ table: 'orders', column: '*' }] },
  { sql: 'select u from users u', exact: [T('users', '*', 'whole_row')] },
  { sql: 'select row_to_json(u) from users u', exact: [T('users', '*', 'whole_row')] },
  { sql: 'select lower(email) from users', exact: [T('users', 'email', 'expression')] },
  { sql: 'select email::text, ssn || name from users', exact: [T('users', 'email', 'expression'), T('users', 'ssn', 'expression'), T('users', 'name', 'expression')] },
  { sql: 'select count(email), max(salary) from users', exact: [T('users', 'email', 'expression'), T('users', 'salary', 'expression')] },
  {
    sql: 'select u.id from users u join orders o on o.uid = u.id where u.email like $1 group by u.id having count(o.card) > 1 order by u.name',
    has: [
      T('users', 'id', 'target'),
      T('orders', 'uid', 'join'),
      T('users', 'id', 'join'),
      T('users', 'email', 'where'),
      T('users', 'id', 'group'),
      T('orders', 'card', 'having'),
      T('users', 'name', 'order'),
    ],
  },
  { sql: 'select a.x from a join b using (id)', has: [T(undefined, 'id', 'join'), T('a', 'x', 'target')] },
  { sql: 'select email, name from users order by 2', exact: [T('users', 'email', 'target'), T('users', 'name', 'target'), T('users', 'name', 'order')] },
  { sql: 'select email as e from users order by e desc', exact: [T('users', 'email', 'target'), T('users', 'email', 'order')], not: [{ column: 'e' }] },
  { sql: 'select lower(email) as e from users order by e', exact: [T('users', 'email', 'expression'), T('users', 'email', 'order')] },
  { sql: 'select u.email from users u join orders o on o.uid = u.id order by email', has: [T('users', 'email', 'order')], not: [{ table: undefined, column: 'email', clause: 'order' }] },
  // GROUP BY e could also name an input column e: both are recorded.
  { sql: 'select email as e, count(*) from users group by e', has: [T('users', 'email', 'group'), T('users', 'e', 'group')] },
  { sql: 'select name as email, count(*) from users group by email', has: [T('users', 'name', 'group'), T('users', 'email', 'group')] },
  { sql: 'select email, count(*) from users group by 1', has: [T('users', 'email', 'group')] },
  { sql: 'select a, b from t group by grouping sets ((1, b), ())', has: [T('t', 'a', 'group'), T('t', 'b', 'group')] },
  { sql: 'select email from users order by 1 limit id offset 2', has: [T('users', 'email', 'order'), T('users', 'id', 'expression')] },
  { sql: 'select distinct on (email) email, id from users', exact: [T('users', 'email', 'target'), T('users', 'id', 'target'), T('users', 'email', 'order')] },
  { sql: 'select distinct on (1) ssn, id from users', has: [T('users', 'ssn', 'order')] },
  // Plain DISTINCT sorts or hashes on every output column.
  { sql: 'select distinct email from users', exact: [T('users', 'email', 'target'), T('users', 'email', 'order')] },
  { sql: 'select * from users order by 3', has: [{ column: '*', clause: 'order' }] },
  {
    sql: 'select rank() over (partition by dept order by salary) from emp',
    exact: [T('emp', 'dept', 'order'), T('emp', 'salary', 'order')],
  },
  { sql: 'select sum(x) over w from t window w as (partition by region)', has: [T('t', 'x', 'expression'), T('t', 'region', 'order')] },
  { sql: 'select d.e from (select email as e from users) d', has: [N('users', 'email', 'target', 'from'), T('d', 'e', 'target')] },
  { sql: 'select * from users u, lateral (select o.card from orders o where o.uid = u.id) c', has: [N('orders', 'card', 'target', 'from'), N('users', 'id', 'where', 'from'), T('users', '*', 'target')] },
  { sql: 'select * from generate_series(1, t.n) g, t', has: [T('t', 'n', 'from')], not: [{ clause: 'join' }] },
  { sql: 'select * from t tablesample bernoulli (t.pct)', has: [T('t', 'pct', 'from')] },
  { sql: 'select id, (select email from users u where u.id = t.uid) from t', has: [T('t', 'id', 'target'), N('users', 'email', 'target', 'target'), N('t', 'uid', 'where', 'target')] },
  { sql: 'select coalesce((select ssn from people limit 1), 0) from t', has: [N('people', 'ssn', 'target', 'target')] },
  { sql: 'select id from t where x in (select email from users)', exact: [T('t', 'id', 'target'), T('t', 'x', 'where'), N('users', 'email', 'target', 'where')] },
  { sql: 'select id from t where exists (select 1 from users u where u.email = t.email)', has: [N('users', 'email', 'where', 'where'), N('t', 'email', 'where', 'where')] },
  { sql: 'select id from t where x = any (select card from c)', has: [N('c', 'card', 'target', 'where')] },
  { sql: 'with s as (select email from users) select email from s', exact: [N('users', 'email', 'target', 'cte'), T(undefined, 'email', 'target')] },
  {
    sql: 'with recursive r(n) as (select id from users union all select n + 1 from r where n < 5) select n from r',
    has: [N('users', 'id', 'target', 'cte'), N(undefined, 'n', 'where', 'cte'), T(undefined, 'n', 'target')],
  },
  { sql: 'select id from t where x in (with w as (select email from users) select email from w)', has: [N('users', 'email', 'target', 'where')] },
  { sql: 'select a from t union select b from u', exact: [N('t', 'a', 'target', 'setop'), N('u', 'b', 'target', 'setop')] },
  {
    sql: 'select a from t intersect select b from u except select c from v order by 1',
    has: [N('t', 'a', 'order', 'setop'), N('u', 'b', 'order', 'setop'), N('v', 'c', 'order', 'setop')],
  },
  { sql: 'select email as e from t union all select ssn from u order by e', has: [N('t', 'email', 'order', 'setop'), N('u', 'ssn', 'order', 'setop')], not: [{ column: 'e' }] },
  { sql: 'insert into archive (mail) select email from users', exact: [T('archive', 'mail', 'set'), N('users', 'email', 'target', 'expression')] },
  { sql: 'insert into t values ((select ssn from p limit 1))', has: [N('p', 'ssn', 'target', 'expression')] },
  { sql: 'create table x as select email from users', exact: [N('users', 'email', 'target', 'expression')] },
  { sql: 'create materialized view mv as select ssn from people', exact: [N('people', 'ssn', 'target', 'expression')] },
  { sql: 'create view v as select email from users where id > 0', exact: [N('users', 'email', 'target', 'expression'), N('users', 'id', 'where', 'expression')] },
  { sql: 'select email into x from users', exact: [N('users', 'email', 'target', 'expression')] },
  { sql: 'copy users to stdout', exact: [T('users', '*', 'target')] },
  { sql: 'copy users (email, id) to stdout', exact: [T('users', 'email', 'target'), T('users', 'id', 'target')] },
  { sql: 'copy users (email) from stdin where id > 5', has: [T('users', 'email', 'target'), T('users', 'id', 'where')] },
  { sql: 'copy (select email from users) to stdout', exact: [T('users', 'email', 'target')] },
  { sql: 'explain select email from users', exact: [T('users', 'email', 'target')] },
  { sql: 'declare c cursor for select email from users', exact: [T('users', 'email', 'target')] },
  { sql: 'delete from users where id = 1 returning email', exact: [T('users', 'id', 'where'), T('users', 'email', 'returning')] },
  // A plain column in RETURNING is returned as itself; anything computed is an expression, as in a select list.
  { sql: 'update users set name = $1 where id = 1 returning ssn, lower(email)', has: [T('users', 'name', 'set'), T('users', 'ssn', 'returning'), T('users', 'email', 'expression')] },
  {
    sql: 'update t set a = u.email from u where t.id = u.id',
    exact: [T('t', 'a', 'set'), T('u', 'email', 'expression'), T('t', 'id', 'where'), T('u', 'id', 'where')],
  },
  { sql: 'update t set a = (select email from u limit 1)', has: [N('u', 'email', 'target', 'set')] },
  { sql: 'delete from t using (select id from u) d where t.id = d.id', has: [N('u', 'id', 'target', 'from'), T('t', 'id', 'where')] },
  {
    sql: 'merge into t using s on t.id = s.id when matched then update set a = s.email when not matched then insert (a) values (s.email)',
    exact: [T('t', 'id', 'join'), T('s', 'id', 'join'), T('t', 'a', 'set'), T('s', 'email', 'expression')],
  },
  { sql: 'merge into t using (select id, ssn from p) s on t.id = s.id when matched then delete', has: [N('p', 'ssn', 'target', 'from')] },
  { sql: 'with d as (delete from users returning email) select * from d', has: [N('users', 'email', 'returning', 'cte')] },
  { sql: 'select (select (select ssn from p) from q) from t', has: [N('p', 'ssn', 'target', 'target')] },
];

const matches = (u: ColumnUse, p: Partial<Use>): boolean =>
  Object.entries(p).every(([k, v]) => (u as unknown as Record<string, unknown>)[k] === v);

function facts(sql: string): StatementFacts {
  const r = classify(sql);
  if (!r.ok) throw new Error(`${sql}: ${r.message}`);
  expect(r.statements).toHaveLength(1);
  return r.statements[0];
}

describe('column uses', () => {
  beforeAll(async () => {
    await initSqlParser();
  });

  it('has enough cases', () => {
    expect(CASES.length).toBeGreaterThanOrEqual(40);
  });

  it.each(CASES.map((c) => [c.sql, c] as const))('%s', (_sql, c) => {
    const { columns } = facts(c.sql);
    if (c.exact) expect(columns).toEqual(expect.arrayContaining(c.exact));
    if (c.exact) expect(columns).toHaveLength(c.exact.length);
    if (c.has) expect(columns).toEqual(expect.arrayContaining(c.has));
    for (const p of c.not ?? []) expect(columns.filter((u) => matches(u, p))).toEqual([]);
  });

  it('marks nested uses with via and top-level uses with neither', () => {
    for (const c of CASES) {
      for (const u of facts(c.sql).columns) {
        if (u.nested) expect(u.via, c.sql).toBeDefined();
        else expect(u, c.sql).not.toHaveProperty('via');
      }
    }
  });

  it('reads ordinal targets once however deeply sub-selects that order by them nest', () => {
    const depth = 80;
    const sql = `${'select (select ssn from p order by 1), ('.repeat(depth)}select email from users order by 1, 1${') order by 2, 1'.repeat(depth)}`;
    const { columns } = facts(sql);
    expect(columns).toEqual(expect.arrayContaining([N('p', 'ssn', 'order', 'target'), N('users', 'email', 'order', 'target')]));
    expect(columns.filter((u) => !u.nested)).toEqual([]);
  });

  it('never fails on ORDER BY / GROUP BY items of any shape', () => {
    const item = fc.constantFrom('1', '2', '0', '-1', '99', 'e', 'email', 'u', 'u.email', 'lower(email)', '1.5', "'x'", '(select 1)', 'rollup (1, e)', 'grouping sets ((1, e), ())');
    fc.assert(
      fc.property(fc.array(item, { minLength: 1, maxLength: 4 }), fc.array(item, { minLength: 1, maxLength: 4 }), fc.boolean(), (group, order, union) => {
        const base = 'select email as e, id from users u';
        const sql = `${union ? `${base} union ` : ''}${base} group by ${group.join(', ')} order by ${order.filter((o) => !o.includes('rollup') && !o.includes('grouping')).concat('1').join(', ')}`;
        const r = classify(sql);
        if (r.ok) {
          // Only GROUP BY may record the alias, as the input column it could also name.
          for (const s of r.statements) for (const u of s.columns) if (u.column === 'e') expect(u.clause).toBe('group');
        }
      }),
    );
  });

  it('keeps facts plain JSON', () => {
    for (const c of CASES) {
      const f = facts(c.sql);
      expect(JSON.parse(JSON.stringify(f))).toEqual(f);
    }
  });
});

describe('copy facts', () => {
  beforeAll(async () => {
    await initSqlParser();
  });

  const COPY: Array<[string, StatementFacts['copy']]> = [
    ['copy users to stdout', { direction: 'out', format: 'text', query: false }],
    ['copy users from stdin', { direction: 'in', format: 'text', query: false }],
    ['copy users (email, id) to stdout', { direction: 'out', format: 'text', query: false, columns: ['email', 'id'] }],
    ['copy (select email from users) to stdout with (format csv)', { direction: 'out', format: 'csv', query: true }],
    [
      "copy users to stdout with (format csv, header, delimiter ';', null 'NULL', quote '''', escape '\\')",
      { direction: 'out', format: 'csv', query: false, header: true, delimiter: ';', null: 'NULL', quote: "'", escape: '\\' },
    ],
    ['copy users to stdout (format binary)', { direction: 'out', format: 'binary', query: false }],
    ['copy users to stdout binary', { direction: 'out', format: 'binary', query: false }],
    ['copy users to stdout with binary', { direction: 'out', format: 'binary', query: false }],
    [
      "copy users from stdin with delimiter as '|' null as '' csv header quote as '\"' escape as 'e'",
      { direction: 'in', format: 'csv', query: false, delimiter: '|', null: '', header: true, quote: '"', escape: 'e' },
    ],
    ["copy users to stdout delimiter ','", { direction: 'out', format: 'text', query: false, delimiter: ',' }],
    ['copy users to stdout (header false, format text)', { direction: 'out', format: 'text', query: false, header: false }],
    ['copy users to stdout (format csv, header 0)', { direction: 'out', format: 'csv', query: false, header: false }],
    ['copy users to stdout (format csv, header on)', { direction: 'out', format: 'csv', query: false, header: true }],
    ['copy users from stdin (format csv, header match)', { direction: 'in', format: 'csv', query: false, header: true }],
    ["copy users to '/tmp/x' (format csv)", { direction: 'out', format: 'csv', query: false }],
  ];

  it.each(COPY)('%s', (sql, expected) => {
    expect(facts(sql).copy).toEqual(expected);
  });

  it('is absent for other statements', () => {
    expect(facts('select * from users')).not.toHaveProperty('copy');
  });

  it('reads any delimiter and null text verbatim', async () => {
    const quote = (s: string) => `'${s.replace(/'/g, "''")}'`;
    await fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 1 }).filter((s) => s !== '\u0000'), fc.string({ maxLength: 8 }).filter((s) => !s.includes('\u0000')), (delimiter, nul) => {
        const f = facts(`copy users to stdout with (format csv, delimiter ${quote(delimiter)}, null ${quote(nul)})`);
        expect(f.copy).toMatchObject({ format: 'csv', delimiter, null: nul });
      }),
    );
  });
});
