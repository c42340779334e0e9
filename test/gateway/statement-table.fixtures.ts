/**
 * The statement table: what each grant may run through Sluice, and what it
 * may not. Every statement works on the schema `sluice_st`, which the test
 * creates: items (20 rows), log (5 rows, ids 1..5), "Mixed Case" (3 rows),
 * and ddl_owned (owned by the ddl backend role, 3 rows).
 */
export const SCHEMA = 'sluice_st';

export type Grant = 'read' | 'write' | 'ddl';
export type Rule = 'sluice-grants' | 'sluice-default-functions' | 'sluice-opaque' | 'sluice-unparseable';

export interface StatementCase {
  readonly grant: Grant;
  readonly sql: string;
  /** Parameters: sent with the extended protocol. */
  readonly params?: readonly unknown[];
  /** Statements run through the same session first (PREPARE before EXECUTE). */
  readonly setup?: readonly string[];
  /**
   * Allowed: the bare names of the tables PostgreSQL reports changed rows in.
   * The classifier's tablesWritten must name the same tables.
   */
  readonly writes?: readonly string[];
  /** The text whose facts describe what runs, when `sql` names it only (EXECUTE). */
  readonly factsFrom?: string;
  /** Statements that manage the transaction themselves, or cannot run inside one. */
  readonly standalone?: boolean;
  /** COPY FROM STDIN data: the case runs through psql. */
  readonly copyData?: string;
  /** Denied: the rule the refusal names, and optionally part of its message. */
  readonly deny?: Rule;
  readonly reason?: string;
}

const S = SCHEMA;

const readAllowed: StatementCase[] = [
  `select count(*) from ${S}.items`,
  `SELECT * FROM ${S}.items WHERE id = 1`,
  `/* x */ SeLeCt name FrOm ${S}.items`,
  `select 1 -- ; delete from ${S}.items`,
  `select 1 /* ; drop table ${S}.items */`,
  `select 1 /* nested /* delete from ${S}.items */ still comment */`,
  `select $$ delete from ${S}.items $$ as body`,
  `select $tag$;drop table ${S}.items;$tag$ as t`,
  `select $a$ $b$ truncate ${S}.items $b$ $a$ as nested`,
  `select * from ${S}."Mixed Case"`,
  `select "Val" from ${S}."Mixed Case" where "id" = 1`,
  `select * from ${S}.U&"it\\0065ms"`,
  `select U&'\\0064elete from x' as s`,
  `select 'drop table x' as "DROP TABLE"`,
  `select E'\\x41\\n' as e`,
  `table ${S}.items`,
  `values (1, 'a'), (2, 'b')`,
  `with c as (select id from ${S}.items) select count(*) from c`,
  `with recursive r(n) as (select 1 union all select n + 1 from r where n < 5) select sum(n) from r`,
  `explain select * from ${S}.items`,
  `explain (costs off) select 1`,
  `explain analyze select count(*) from ${S}.items`,
  `EXPLAIN (ANALYZE, BUFFERS) SELECT id FROM ${S}.items WHERE id < 5`,
  `show work_mem`,
  `show search_path`,
  `show transaction_read_only`,
  `show default_transaction_read_only`,
  `set session characteristics as transaction read only`,
  `SHOW ALL`,
  `set statement_timeout = '5s'`,
  `SET LOCAL work_mem = '8MB'`,
  `set application_name to 'statement-table'`,
  `SeT DateStyle = 'ISO, MDY'`,
  `reset statement_timeout`,
  `RESET work_mem`,
  `set "statement_timeout" = 1000`,
  `select set_config('statement_timeout', '1000', true)`,
  `select set_config('application_name', 'st', false)`,
  `select current_setting('work_mem')`,
  `select now() is not null, current_user`,
  `select count(*) from pg_catalog.pg_class`,
  `select 1; select 2`,
  `select 1; /* ; delete from ${S}.items; */ select 2`,
  `select id from ${S}.items order by id limit 3 offset 2`,
  `select i.id, l.note from ${S}.items i join ${S}.log l on l.id = i.id`,
  `select * from ${S}.items where name like '%delete%'`,
  `select "id" from "${S}"."items"`,
  `select array_agg(id order by id) from ${S}.items`,
  `select jsonb_build_object('delete', 1)`,
  `select length(repeat('x', 10))`,
  `select id from ${S}.items where id in (select id from ${S}.log)`,
  `select exists (select 1 from ${S}."Mixed Case")`,
  `declare st_c1 cursor for select * from ${S}.items; fetch 2 from st_c1; close st_c1`,
  `listen st_chan`,
  `notify st_chan, 'hi'`,
  `select pg_notify('st_chan', 'x')`,
  `copy ${S}.items to stdout`,
  `copy (select id from ${S}.items where id < 3) to stdout`,
  `COPY ${S}.items (id, name) TO STDOUT WITH (FORMAT csv, HEADER)`,
  `savepoint s1`,
  `savepoint s1; release savepoint s1`,
  `savepoint s1; select 1; rollback to savepoint s1`,
  `analyze ${S}.items`,
  `prepare st_r0 as select count(*) from ${S}.items`,
].map((sql) => ({ grant: 'read', sql }));

const readAllowedMore: StatementCase[] = [
  { grant: 'read', sql: `select * from ${S}.items where id = $1`, params: [1] },
  { grant: 'read', sql: `select $1::text as t`, params: [`'; delete from ${S}.items; --`] },
  { grant: 'read', sql: `select count(*) from ${S}.items where name = $1 or id = $2`, params: ['a', 2] },
  { grant: 'read', sql: `execute st_r1(1)`, setup: [`prepare st_r1(int) as select * from ${S}.items where id = $1`] },
  { grant: 'read', sql: `EXECUTE st_r2`, setup: [`prepare st_r2 as select 'delete' as d`] },
  { grant: 'read', sql: `begin`, standalone: true },
  { grant: 'read', sql: `start transaction read only`, standalone: true },
  { grant: 'read', sql: `begin; select count(*) from ${S}.items; commit`, standalone: true },
  { grant: 'read', sql: `BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1; ROLLBACK`, standalone: true },
  { grant: 'read', sql: `commit`, standalone: true },
  { grant: 'read', sql: `rollback`, standalone: true },
  { grant: 'read', sql: `discard plans`, standalone: true },
  { grant: 'read', sql: `vacuum ${S}.items`, standalone: true },
];

const writeAllowed: StatementCase[] = [
  { sql: `insert into ${S}.items values (1001, 'new', 1)`, writes: ['items'] },
  { sql: `INSERT INTO ${S}.items (id, name, qty) SELECT 2000 + id, name, qty FROM ${S}.items WHERE id <= 3`, writes: ['items'] },
  { sql: `update ${S}.items set qty = qty + 1 where id = 1`, writes: ['items'] },
  { sql: `/* x */ UpDaTe ${S}.items SET qty = 0 WHERE id = 2`, writes: ['items'] },
  { sql: `delete from ${S}.items where id = 3`, writes: ['items'] },
  { sql: `/* x */ DeLeTe FrOm ${S}.items WHERE id = 4`, writes: ['items'] },
  { sql: `-- just a select\ndelete from ${S}.items where id = 5`, writes: ['items'] },
  { sql: `delete from ${S}."Mixed Case" where id = 1`, writes: ['Mixed Case'] },
  { sql: `update ${S}."Mixed Case" set "Val" = 'z' where "id" = 2`, writes: ['Mixed Case'] },
  { sql: `delete from ${S}.U&"it\\0065ms" where id = 6`, writes: ['items'] },
  { sql: `insert into ${S}.items values (1002, $$it's; drop table x$$, 1)`, writes: ['items'] },
  { sql: `insert into ${S}.items values (1003, U&'\\0041', 1)`, writes: ['items'] },
  { sql: `with d as (delete from ${S}.items where id = 7 returning id, name) insert into ${S}.log select id, name from d`, writes: ['items', 'log'] },
  { sql: `with u as (update ${S}.items set qty = 9 where id = 8 returning id) select count(*) from u`, writes: ['items'] },
  { sql: `with x as (insert into ${S}.log values (200, 'cte') returning *) select * from x`, writes: ['log'] },
  { sql: `insert into ${S}.items values (9, 'dup', 1) on conflict (id) do update set qty = excluded.qty`, writes: ['items'] },
  { sql: `insert into ${S}.items values (1004, 'x', 1) on conflict do nothing`, writes: ['items'] },
  { sql: `merge into ${S}.items t using ${S}.log l on t.id = l.id when matched then update set qty = 100`, writes: ['items'] },
  { sql: `MERGE INTO ${S}.log t USING (SELECT 300 AS id) s ON t.id = s.id WHEN NOT MATCHED THEN INSERT VALUES (s.id, 'merged')`, writes: ['log'] },
  { sql: `explain analyze delete from ${S}.items where id = 10`, writes: ['items'] },
  { sql: `EXPLAIN (ANALYZE) UPDATE ${S}.log SET note = 'e' WHERE id = 1`, writes: ['log'] },
  { sql: `explain delete from ${S}.items`, writes: [] },
  { sql: `insert into ${S}.log values (100, 'a'); update ${S}.log set note = 'b' where id = 100`, writes: ['log'] },
  { sql: `update ${S}.items set qty = 1 where id = 11; delete from ${S}.log where id = 2`, writes: ['items', 'log'] },
  { sql: `select 1; insert into ${S}.log values (101, 'after a select')`, writes: ['log'] },
  { sql: `insert into ${S}.items values ($1, $2, $3)`, params: [1005, 'param', 2], writes: ['items'] },
  { sql: `update ${S}.items set name = $1 where id = $2`, params: ['renamed', 12], writes: ['items'] },
  { sql: `delete from ${S}.items where id = any($1)`, params: [[13, 14]], writes: ['items'] },
  { sql: `insert into ${S}.log select id, name from ${S}.items where id <= 2`, writes: ['log'] },
  { sql: `update ${S}.items i set qty = 5 from ${S}.log l where l.id = i.id`, writes: ['items'] },
  { sql: `delete from ${S}.items using ${S}.log l where l.id = ${S}.items.id`, writes: ['items'] },
  { sql: `insert into ${S}."Mixed Case" ("id", "Val") values (10, 'q')`, writes: ['Mixed Case'] },
  { sql: `select * from ${S}.items where id = 1 for update`, writes: [] },
  { sql: `select * from ${S}.items for share skip locked`, writes: [] },
  { sql: `lock table ${S}.items in share mode`, writes: [] },
  { sql: `set transaction_read_only = off`, writes: [] },
  {
    sql: `execute st_w1(1006)`,
    setup: [`prepare st_w1(int) as insert into ${S}.items values ($1, 'prepared', 1)`],
    factsFrom: `insert into ${S}.items values (1006, 'prepared', 1)`,
    writes: ['items'],
  },
  { sql: `copy ${S}.log (id, note) from stdin`, copyData: '400\tcopied\n401\tcopied too\n', writes: ['log'] },
  { sql: `COPY ${S}."Mixed Case" FROM STDIN WITH (FORMAT csv)`, copyData: '20,from csv\n', writes: ['Mixed Case'] },
].map((c) => ({ grant: 'write', ...c }));

const ddlAllowed: StatementCase[] = [
  { sql: `create table ${S}.t_new (id int)` },
  { sql: `/* c */ CrEaTe TaBlE ${S}.t_case (id int primary key)` },
  { sql: `create table ${S}."Quoted New" ("Id" int)` },
  { sql: `create table ${S}.t_ctas as select * from ${S}.items`, writes: ['t_ctas'] },
  { sql: `select * into ${S}.t_into from ${S}.items where id < 5`, writes: ['t_into'] },
  { sql: `create temp table st_tmp as select 1 as x`, writes: ['st_tmp'] },
  { sql: `create index on ${S}.ddl_owned (id)` },
  { sql: `alter table ${S}.ddl_owned add column extra int` },
  { sql: `ALTER TABLE ${S}.ddl_owned RENAME COLUMN id TO id2` },
  { sql: `drop table ${S}.ddl_owned` },
  { sql: `truncate ${S}.ddl_owned` },
  { sql: `create view ${S}.v_items as select id from ${S}.items` },
  { sql: `comment on table ${S}.ddl_owned is 'drop table everything'` },
  { sql: `create sequence ${S}.s_one` },
  { sql: `create table ${S}.t_multi (id int); insert into ${S}.t_multi values (1); drop table ${S}.t_multi` },
  { sql: `delete from ${S}.items where id = 15`, writes: ['items'] },
  { sql: `update ${S}.log set note = 'ddl' where id = 3`, writes: ['log'] },
  { sql: `select count(*) from ${S}.items` },
  { sql: `set statement_timeout = 0` },
].map((c) => ({ grant: 'ddl', ...c }));

const G: Rule = 'sluice-grants';
const F: Rule = 'sluice-default-functions';
const O: Rule = 'sluice-opaque';
const U: Rule = 'sluice-unparseable';

const readDenied: Array<[string, Rule, string?]> = [
  [`delete from ${S}.items`, G, 'DELETE needs grant write'],
  [`select lo_from_bytea(0, 'x')`, G, 'lo_from_bytea(), which writes a large object needs grant write'],
  [`select pg_catalog.lo_create(0)`, G, 'lo_create(), which writes a large object needs grant write'],
  [`set transaction read write`, G, 'changing transaction_read_only needs grant write'],
  [`SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE`, G, 'changing transaction_read_only needs grant write'],
  [`/* x */ DeLeTe FrOm ${S}.items`, G, 'DELETE needs grant write'],
  [`-- select\ndelete from ${S}.items`, G, 'DELETE needs grant write'],
  [`select 1 /* harmless */; delete from ${S}.items where id = 1`, G, 'DELETE needs grant write'],
  [`select 1; select 2; update ${S}.items set qty = 0`, G, 'UPDATE needs grant write'],
  [`delete from ${S}.U&"it\\0065ms"`, G],
  [`delete from "${S}"."Mixed Case"`, G],
  [`insert into ${S}.items values (5000, 'x', 1)`, G, 'INSERT needs grant write'],
  [`update ${S}.items set qty = 0`, G],
  [`merge into ${S}.items t using ${S}.log l on t.id = l.id when matched then delete`, G],
  [`with d as (delete from ${S}.items returning *) select * from d`, G, 'needs grant write'],
  [`WITH u AS (UPDATE ${S}.items SET qty = 0 RETURNING id) SELECT count(*) FROM u`, G],
  [`with x as (select 1) insert into ${S}.log values (1, 'x')`, G],
  [`explain analyze delete from ${S}.items`, G],
  [`EXPLAIN (ANALYZE true) INSERT INTO ${S}.log VALUES (9, 'x')`, G],
  [`select * into ${S}.t_x from ${S}.items`, G, 'needs grant ddl'],
  [`create table ${S}.t_x as select 1`, G, 'needs grant ddl'],
  [`copy ${S}.items from stdin`, G, 'needs grant write'],
  [`copy ${S}.items to '/tmp/sluice-st-out'`, F],
  [`copy ${S}.items from program 'id'`, F],
  [`COPY ${S}.items TO PROGRAM 'cat > /tmp/x'`, F],
  [`prepare st_d1 as delete from ${S}.items`, G],
  [`execute st_nope`, O],
  [`do $$ begin delete from ${S}.items; end $$`, O],
  [`call ${S}.p()`, O],
  [`set role postgres`, F, 'SET of role'],
  [`SeT RoLe postgres`, F],
  [`set "role" = postgres`, F],
  [`reset role`, F],
  [`set session authorization default`, F],
  [`set search_path = ${S}`, F, 'search_path'],
  [`SET search_path TO public`, F],
  [`select 1; set role postgres`, F],
  [`select set_config('search_path', '${S}', false)`, F],
  [`select set_config('role', 'postgres', false)`, F],
  [`SELECT SET_CONFIG('Session_Authorization', 'postgres', false)`, F],
  [`set names 'LATIN1'`, F],
  [`select pg_read_file('/etc/passwd')`, F, 'pg_read_file'],
  [`select pg_catalog.pg_read_file('/etc/passwd')`, F],
  [`select "pg_read_file"('/etc/passwd')`, F],
  [`SELECT PG_READ_FILE('/etc/passwd')`, F],
  [`select U&"pg_read_fil\\0065"('/etc/passwd')`, F],
  [`select pg_ls_dir('.')`, F],
  [`select pg_stat_file('postgresql.conf')`, F],
  [`select lo_import('/etc/passwd')`, F],
  [`select pg_terminate_backend(pg_backend_pid())`, F],
  [`select pg_reload_conf()`, F],
  [`select * from ${S}.items where exists (select pg_ls_waldir())`, F],
  [`select id from ${S}.items where name = (select pg_read_binary_file('/etc/passwd')::text)`, F],
  [`drop table ${S}.items`, G, 'DROP TABLE needs grant ddl'],
  [`truncate ${S}.items`, G],
  [`alter table ${S}.items add column z int`, G],
  [`create table ${S}.t_y (id int)`, G],
  [`create function ${S}.f_r() returns int language sql as $$ select 1 $$`, O],
  [`grant select on ${S}.items to public`, G, 'needs grant admin'],
  [`create role st_evil`, G],
  [`alter system set work_mem = '1GB'`, G],
  [`lock table ${S}.items`, G],
  [`select * from ${S}.items for update`, G],
  [`set default_transaction_read_only = off`, G],
  [`set session_replication_role = replica`, G],
  [`load 'plpgsql'`, G],
  [`selec 1`, U],
  [`select from from`, U],
  [`select 1; delete from`, U],
];

const writeDenied: Array<[string, Rule, string?]> = [
  [`drop table ${S}.items`, G, 'DROP TABLE needs grant ddl'],
  [`/* x */ dRoP tAbLe ${S}."Mixed Case"`, G],
  [`truncate ${S}.items`, G],
  [`insert into ${S}.log values (1, 'x'); drop table ${S}.log`, G],
  [`create table ${S}.t_w (id int)`, G],
  [`create table ${S}.t_w as select * from ${S}.items`, G],
  [`select * into ${S}.t_w from ${S}.items`, G],
  [`alter table ${S}.items drop column qty`, G],
  [`create index on ${S}.items (name)`, G],
  [`grant delete on ${S}.items to public`, G],
  [`set role postgres`, F],
  [`set session_authorization = postgres`, F],
  [`select pg_read_file('/etc/passwd')`, F],
  [`do $$ begin perform 1; end $$`, O],
  [`copy ${S}.items from '/etc/passwd'`, F],
  [`set session_replication_role = replica`, G],
];

const ddlDenied: Array<[string, Rule, string?]> = [
  [`grant all on ${S}.items to public`, G, 'needs grant admin'],
  [`revoke select on ${S}.items from public`, G],
  [`create role st_evil superuser`, G],
  [`alter system set log_statement = 'none'`, G],
  [`set role postgres`, F],
  [`set session authorization postgres`, F],
  [`set search_path = pg_temp, ${S}`, F],
  [`select set_config('search_path', 'x', false)`, F],
  [`select pg_read_file('/etc/passwd')`, F],
  [`select pg_terminate_backend(1)`, F],
  [`select lo_export(1, '/tmp/x')`, F],
  [`select dblink_connect('host=evil')`, F],
  [`create function ${S}.f_one() returns int language sql as $$ select 1 $$`, O],
  [`CREATE PROCEDURE ${S}.p_one() LANGUAGE sql AS $body$ delete from ${S}.items $body$`, O],
  [`do $$ begin perform 1; end $$`, O],
  [`copy ${S}.items to '/tmp/sluice-st'`, F],
  [`copy ${S}.items from program 'id'`, F],
  [`set session_replication_role = replica`, G],
  [`load 'plpgsql'`, G],
];

const denied = (grant: Grant, rows: Array<[string, Rule, string?]>): StatementCase[] =>
  rows.map(([sql, deny, reason]) => ({ grant, sql, deny, ...(reason ? { reason } : {}) }));

export const ALLOWED: readonly StatementCase[] = [...readAllowed, ...readAllowedMore, ...writeAllowed, ...ddlAllowed];
export const DENIED: readonly StatementCase[] = [...denied('read', readDenied), ...denied('write', writeDenied), ...denied('ddl', ddlDenied)];

/** Reads and writes on the test tables for the property test; `read` may run the first kind only. */
export const READ_POOL: readonly string[] = [
  `select count(*) from ${S}.items`,
  `select * from ${S}."Mixed Case"`,
  `select 1`,
  `begin`,
  `commit`,
  `rollback`,
  `savepoint p`,
  `explain delete from ${S}.log`,
  `show work_mem`,
];

export const WRITE_POOL: readonly string[] = [
  `delete from ${S}.items`,
  `delete from ${S}.items where id = 1`,
  `/* x */ DeLeTe FrOm ${S}.log`,
  `update ${S}.items set qty = qty + 1`,
  `insert into ${S}.log values (900, 'x')`,
  `insert into ${S}."Mixed Case" values (900, 'x')`,
  `truncate ${S}.log`,
  `drop table ${S}."Mixed Case"`,
  `with d as (delete from ${S}.items returning *) select count(*) from d`,
  `explain analyze delete from ${S}.log`,
  `select * into ${S}.t_prop from ${S}.items`,
  `merge into ${S}.items t using ${S}.log l on t.id = l.id when matched then delete`,
  `set role postgres`,
  `set default_transaction_read_only = off`,
  `prepare p_del as delete from ${S}.items`,
  `execute p_del`,
  `do $$ begin delete from ${S}.items; end $$`,
  `copy ${S}.log from program 'echo 1'`,
];
