import type { ColumnClause, ColumnUse, CopyFacts, StatementFacts, StatementKind } from './facts.js';
import { copyFacts } from './copy.js';
import { DML_KINDS, kindOfNode } from './kinds.js';

type Obj = Record<string, unknown>;

interface Scope {
  parent?: Scope;
  ctes: Set<string>;
  /** alias (or bare table name) → table name; undefined for derived tables and CTEs. */
  aliases: Map<string, string | undefined>;
  tables: string[];
}

interface Ctx {
  scope: Scope;
  clause: ColumnClause;
  /** The outermost statement's clause we are in; becomes `via` when a sub-select starts. */
  section: ColumnClause;
  nested: boolean;
  via?: ColumnClause;
  /** Re-reading a target for ORDER BY / GROUP BY: sub-selects were read the first time and keep their own clauses. */
  again?: boolean;
  /** False inside bodies that are stored, not run now (rules, plain EXPLAIN, function bodies). */
  executing: boolean;
  inCte: boolean;
}

/** Functions that run SQL given as text: what they do cannot be judged from this statement. */
const DYNAMIC_SQL_FUNCTIONS = new Set([
  'query_to_xml',
  'query_to_xmlschema',
  'query_to_xml_and_xmlschema',
  'cursor_to_xml',
  'cursor_to_xmlschema',
  'ts_stat',
  // These read a table, schema or database named by a text argument.
  'table_to_xml',
  'table_to_xmlschema',
  'table_to_xml_and_xmlschema',
  'schema_to_xml',
  'schema_to_xmlschema',
  'schema_to_xml_and_xmlschema',
  'database_to_xml',
  'database_to_xmlschema',
  'database_to_xml_and_xmlschema',
]);

const TABLE_OBJECT_TYPES = new Set(['OBJECT_TABLE', 'OBJECT_VIEW', 'OBJECT_MATVIEW', 'OBJECT_SEQUENCE', 'OBJECT_FOREIGN_TABLE', 'OBJECT_INDEX']);

const CONDITION_CLAUSES: ReadonlySet<ColumnClause> = new Set(['where', 'join', 'order', 'group', 'having']);

/** A select-list entry that is `*` or `t.*`. */
function isStarTarget(t: unknown): boolean {
  const rt = unwrap(t, 'ResTarget');
  const ref = rt ? unwrap(rt.val, 'ColumnRef') : undefined;
  const fields = ref ? asArray(ref.fields) : [];
  const last = fields[fields.length - 1];
  return isObj(last) && 'A_Star' in last;
}

const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);
const asArray = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

/** Quote a name part only where joining with dots would otherwise be ambiguous. */
function part(s: string): string {
  return /^[^."]*$/.test(s) ? s : `"${s.replace(/"/g, '""')}"`;
}

function strings(list: unknown): string[] {
  return asArray(list).flatMap((item) => {
    const s = isObj(item) && isObj(item.String) ? item.String.sval : undefined;
    return typeof s === 'string' ? [s] : [];
  });
}

function rangeVarName(rv: Obj): string {
  return [rv.catalogname, rv.schemaname, rv.relname]
    .filter((p): p is string => typeof p === 'string' && p !== '')
    .map(part)
    .join('.');
}

function unwrap(v: unknown, type: string): Obj | undefined {
  if (!isObj(v)) return undefined;
  if (isObj(v[type])) return v[type] as Obj;
  return undefined;
}

function constText(v: unknown): string | undefined {
  const c = unwrap(v, 'A_Const');
  if (!c) {
    const tc = unwrap(v, 'TypeCast');
    return tc ? constText(tc.arg) : undefined;
  }
  if (isObj(c.sval)) return String(c.sval.sval ?? '');
  if (isObj(c.ival)) return String(c.ival.ival ?? 0);
  if (isObj(c.fval)) return String(c.fval.fval ?? '');
  if (isObj(c.boolval)) return c.boolval.boolval ? 'true' : 'false';
  return undefined;
}

function sameTree(a: unknown, b: unknown): boolean {
  const strip = (v: unknown): string => JSON.stringify(v, (k, val) => (k === 'location' ? undefined : val));
  return strip(a) === strip(b);
}

/** True when the expression mentions a column outside any subquery. */
function refsColumn(e: unknown): boolean {
  const stack: unknown[] = [e];
  while (stack.length > 0) {
    const v = stack.pop();
    if (Array.isArray(v)) {
      stack.push(...v);
      continue;
    }
    if (!isObj(v)) continue;
    if (isObj(v.ColumnRef)) return true;
    if (isObj(v.SubLink)) {
      stack.push(v.SubLink.testexpr);
      continue;
    }
    stack.push(...Object.values(v));
  }
  return false;
}

/** Whether a WHERE can restrict rows: constant or self-comparing conditions cannot. */
export function isBounding(e: unknown): boolean {
  if (!isObj(e)) return false;
  if (isObj(e.CurrentOfExpr)) return true;
  const bool = unwrap(e, 'BoolExpr');
  if (bool) {
    const args = asArray(bool.args);
    if (bool.boolop === 'AND_EXPR') return args.some(isBounding);
    if (bool.boolop === 'OR_EXPR') return args.length > 0 && args.every(isBounding);
    return args.length === 1 && refsColumn(args[0]) && !selfComparison(args[0]);
  }
  if (selfComparison(e)) return false;
  return refsColumn(e);
}

function selfComparison(e: unknown): boolean {
  const ex = unwrap(e, 'A_Expr');
  return !!ex && ex.lexpr !== undefined && sameTree(ex.lexpr, ex.rexpr);
}

/** One SELECT whose target list produces output rows: a plain SELECT, or each arm of a set operation. */
interface Leaf {
  ctx: Ctx;
  targets: unknown[];
}

const at = (ctx: Ctx, clause: ColumnClause, section: ColumnClause = clause): Ctx => ({ ...ctx, clause, section });

/** Enter a sub-select; `via` is kept from the outermost one. */
const nest = (ctx: Ctx, via: ColumnClause): Ctx => (ctx.nested ? ctx : { ...ctx, nested: true, via });

/** PostgreSQL's output column name for a target, as far as ORDER BY / GROUP BY name matching needs it. */
function outputName(rt: Obj): string | undefined {
  if (typeof rt.name === 'string') return rt.name;
  let val = rt.val;
  while (unwrap(val, 'TypeCast')) val = unwrap(val, 'TypeCast')!.arg;
  const ref = unwrap(val, 'ColumnRef');
  const names = ref ? asArray(ref.fields) : [];
  const last = names[names.length - 1];
  return isObj(last) && isObj(last.String) ? String(last.String.sval) : undefined;
}

class Collector {
  readonly read = new Set<string>();
  readonly written = new Set<string>();
  readonly columns: ColumnUse[] = [];
  private readonly columnKeys = new Set<string>();
  readonly functions = new Set<string>();
  readonly effects = new Set<string>();
  opaque = false;
  setting?: { name: string; value?: string };
  /** DML run by this statement (not stored for later), in order of appearance. */
  readonly dml: StatementKind[] = [];
  bounded?: boolean;

  column(use: ColumnUse): void {
    const key = `${use.table ?? ''}\u0000${use.column}\u0000${use.clause}\u0000${use.via ?? ''}`;
    if (this.columnKeys.has(key)) return;
    this.columnKeys.add(key);
    this.columns.push(use);
  }

  markBounded(where: unknown): void {
    this.bounded = (this.bounded ?? true) && isBounding(where);
  }
}

const newScope = (parent?: Scope): Scope => ({ parent, ctes: new Set(), aliases: new Map(), tables: [] });

function isCte(name: string, scope: Scope | undefined): boolean {
  for (let s = scope; s; s = s.parent) if (s.ctes.has(name)) return true;
  return false;
}

function resolveAlias(name: string, scope: Scope): { found: boolean; table?: string } {
  for (let s: Scope | undefined = scope; s; s = s.parent) {
    if (s.aliases.has(name)) return { found: true, table: s.aliases.get(name) };
  }
  return { found: false };
}

class Walker {
  constructor(readonly out: Collector) {}

  private column(ctx: Ctx, use: ColumnUse): void {
    this.out.column(ctx.nested ? { ...use, nested: true, via: ctx.via } : use);
  }

  walk(v: unknown, ctx: Ctx): void {
    if (Array.isArray(v)) {
      for (const item of v) this.walk(item, ctx);
      return;
    }
    if (!isObj(v)) return;
    const keys = Object.keys(v);
    if (keys.length === 1 && /^[A-Z]/.test(keys[0]) && isObj(v[keys[0]])) {
      this.node(keys[0], v[keys[0]] as Obj, ctx);
      return;
    }
    if (typeof v.relname === 'string') {
      this.rangeVar(v, ctx, 'read');
      return;
    }
    for (const k of keys) this.walk(v[k], ctx);
  }

  node(type: string, n: Obj, ctx: Ctx): void {
    switch (type) {
      case 'SelectStmt':
        return void this.select(n, ctx);
      case 'InsertStmt':
        return this.insert(n, ctx);
      case 'UpdateStmt':
        return this.update(n, ctx);
      case 'DeleteStmt':
        return this.delete(n, ctx);
      case 'MergeStmt':
        return this.merge(n, ctx);
      case 'RangeVar':
        return void this.rangeVar(n, ctx, 'read');
      case 'FuncCall':
        return this.funcCall(n, ctx);
      case 'ColumnRef':
        return this.columnRef(n, ctx);
      case 'SubLink':
        this.walk(n.testexpr, ctx);
        // Walking sub-selects again would cost time exponential in their nesting.
        if (!ctx.again) this.walk(n.subselect, nest(ctx, ctx.section));
        return;
      case 'WindowDef':
        return this.windowDef(n, ctx);
      case 'RangeSubselect':
        this.alias(n, ctx);
        this.walk(n.subquery, nest(ctx, 'from'));
        return;
      case 'RangeFunction':
      case 'RangeTableFunc':
        this.alias(n, ctx);
        for (const [k, child] of Object.entries(n)) if (k !== 'alias') this.walk(child, ctx);
        return;
      case 'JoinExpr':
        this.walk(n.larg, ctx);
        this.walk(n.rarg, ctx);
        // USING names a column of both sides, so no single table can be named.
        for (const column of strings(n.usingClause)) this.column(ctx, { column, clause: 'join' });
        // NATURAL joins on every column name the sides share, which the text does not list: any column may be a join condition.
        if (n.isNatural === true) this.column(ctx, { column: '*', clause: 'join' });
        this.walk(n.quals, at(ctx, 'join'));
        return;
      default:
        for (const child of Object.values(n)) this.walk(child, ctx);
    }
  }

  private alias(n: Obj, ctx: Ctx): void {
    const alias = isObj(n.alias) ? n.alias.aliasname : undefined;
    if (typeof alias === 'string') ctx.scope.aliases.set(alias, undefined);
  }

  private windowDef(n: Obj, ctx: Ctx): void {
    this.walk(n.partitionClause, at(ctx, 'order'));
    this.walk(n.orderClause, at(ctx, 'order'));
    this.walk(n.startOffset, at(ctx, 'expression'));
    this.walk(n.endOffset, at(ctx, 'expression'));
  }

  rangeVar(rv: unknown, ctx: Ctx, mode: 'read' | 'write' | 'both'): string | undefined {
    const node = isObj(rv) && isObj(rv.RangeVar) ? (rv.RangeVar as Obj) : rv;
    if (!isObj(node) || typeof node.relname !== 'string') {
      this.walk(rv, ctx);
      return undefined;
    }
    const alias = isObj(node.alias) && typeof node.alias.aliasname === 'string' ? node.alias.aliasname : node.relname;
    const qualified = node.schemaname !== undefined || node.catalogname !== undefined;
    if (mode === 'read' && !qualified && isCte(node.relname, ctx.scope)) {
      ctx.scope.aliases.set(alias, undefined);
      return undefined;
    }
    const name = rangeVarName(node);
    if (mode !== 'write') this.out.read.add(name);
    if (mode !== 'read') this.out.written.add(name);
    ctx.scope.aliases.set(alias, name);
    ctx.scope.tables.push(name);
    return name;
  }

  withClause(w: unknown, ctx: Ctx): void {
    if (!isObj(w)) return;
    const ctes = asArray(w.ctes).map((c) => unwrap(c, 'CommonTableExpr')).filter((c): c is Obj => !!c);
    const names = ctes.map((c) => String(c.ctename));
    ctes.forEach((cte, i) => {
      const scope = newScope(ctx.scope);
      for (const name of w.recursive ? names : names.slice(0, i)) scope.ctes.add(name);
      this.walk(cte.ctequery, { ...nest(ctx, 'cte'), scope, clause: 'expression', section: 'expression', inCte: true });
    });
    for (const name of names) ctx.scope.ctes.add(name);
  }

  targets(list: unknown, ctx: Ctx, clause: ColumnClause): void {
    for (const item of asArray(list)) {
      const rt = unwrap(item, 'ResTarget');
      const val = rt ? rt.val : item;
      if (unwrap(val, 'ColumnRef')) this.columnRef(unwrap(val, 'ColumnRef')!, at(ctx, clause));
      // Anything but a plain column in a select list or RETURNING computes a value: an expression.
      else this.walk(val, at(ctx, clause === 'target' || clause === 'returning' ? 'expression' : clause, clause));
    }
  }

  /**
   * ORDER BY, GROUP BY and DISTINCT ON items. An integer or a bare output
   * column name stands for that target expression, whose columns are then used
   * for ordering or grouping (in every arm of a set operation). Sub-selects in
   * that expression are not read again: their columns keep their own clauses.
   */
  private sortItems(list: unknown, clause: ColumnClause, ctx: Ctx, leaves: Leaf[], done: Set<string>, inGroupingSet = false): void {
    for (const item of asArray(list)) {
      const set = unwrap(item, 'GroupingSet');
      if (set && clause === 'group') {
        this.sortItems(set.content, clause, ctx, leaves, done, true);
        continue;
      }
      const row = inGroupingSet ? unwrap(item, 'RowExpr') : undefined;
      if (row) {
        this.sortItems(row.args, clause, ctx, leaves, done, true);
        continue;
      }
      const sortBy = unwrap(item, 'SortBy');
      const expr = sortBy ? sortBy.node : item;
      const positions = this.outputPositions(expr, leaves);
      // In GROUP BY a bare name means the input column when one has that name (ORDER BY prefers the output column): record both.
      if (positions === undefined || (clause === 'group' && unwrap(expr, 'ColumnRef'))) this.walk(item, at(ctx, clause));
      if (positions === undefined) continue;
      // Each target is read again at most once per clause, however often it is named.
      for (const i of positions.filter((p) => !done.has(`${clause}:${p}`))) {
        done.add(`${clause}:${i}`);
        for (const leaf of leaves) {
          // After a `*` the position may name any column the star expands to.
          if (i >= leaf.targets.length || leaf.targets.slice(0, i + 1).some(isStarTarget)) this.column(at(leaf.ctx, clause), { column: '*', clause });
          const rt = unwrap(leaf.targets[i], 'ResTarget');
          if (rt) this.walk(rt.val, { ...at(leaf.ctx, clause), again: true });
        }
      }
    }
  }

  /** Target positions an ORDER BY / GROUP BY item refers to, or undefined when it is an ordinary expression. */
  private outputPositions(expr: unknown, leaves: Leaf[]): number[] | undefined {
    const c = unwrap(expr, 'A_Const');
    if (c && isObj(c.ival)) {
      const n = Number(c.ival.ival ?? 0);
      return n >= 1 ? [n - 1] : [];
    }
    const ref = unwrap(expr, 'ColumnRef');
    const fields = ref ? asArray(ref.fields) : [];
    const name = fields.length === 1 ? strings(fields)[0] : undefined;
    if (name === undefined || leaves.length === 0) return undefined;
    // Output names come from the leftmost arm of a set operation.
    const positions = leaves[0].targets.flatMap((t, i) => {
      const rt = unwrap(t, 'ResTarget');
      return rt && outputName(rt) === name ? [i] : [];
    });
    return positions.length > 0 ? positions : undefined;
  }

  select(n: Obj, outer: Ctx): Leaf[] {
    let ctx: Ctx = { ...outer, scope: newScope(outer.scope) };
    // SELECT INTO stores its rows instead of returning them, like CREATE TABLE AS.
    if (isObj(n.intoClause)) ctx = nest(ctx, 'expression');
    this.withClause(n.withClause, ctx);
    let leaves: Leaf[] = [{ ctx, targets: asArray(n.targetList) }];
    if (n.op !== undefined && n.op !== 'SETOP_NONE') {
      const arm = nest(ctx, 'setop');
      leaves = [...this.select(isObj(n.larg) ? n.larg : {}, arm), ...this.select(isObj(n.rarg) ? n.rarg : {}, arm)];
    }
    this.walk(n.fromClause, at(ctx, 'from'));
    this.walk(n.valuesLists, at(ctx, 'expression'));
    this.targets(n.targetList, ctx, 'target');
    if (isObj(n.intoClause)) {
      this.rangeVar(n.intoClause.rel, ctx, 'write');
      this.out.effects.add('select_into');
    }
    this.walk(n.whereClause, at(ctx, 'where'));
    const done = new Set<string>();
    this.sortItems(n.groupClause, 'group', ctx, leaves, done);
    this.walk(n.havingClause, at(ctx, 'having'));
    const distinct = asArray(n.distinctClause);
    // Plain DISTINCT sorts or hashes on every output column, like an ORDER BY of all of them.
    if (distinct.length > 0 && distinct.every((d) => isObj(d) && Object.keys(d).length === 0)) {
      this.sortItems(leaves[0] ? leaves[0].targets.map((_, i) => ({ A_Const: { ival: { ival: i + 1 } } })) : [], 'order', ctx, leaves, done);
    } else this.sortItems(n.distinctClause, 'order', ctx, leaves, done);
    this.sortItems(n.sortClause, 'order', ctx, leaves, done);
    this.walk(n.windowClause, at(ctx, 'order'));
    for (const k of ['limitCount', 'limitOffset']) this.walk(n[k], at(ctx, 'expression'));
    if (asArray(n.lockingClause).length > 0) this.out.effects.add('row_lock');
    return leaves;
  }

  private dmlStart(kind: StatementKind, n: Obj, outer: Ctx): Ctx {
    const ctx: Ctx = { ...outer, scope: newScope(outer.scope) };
    this.withClause(n.withClause, ctx);
    if (outer.executing) {
      this.out.dml.push(kind);
      if (outer.inCte) this.out.effects.add('data_modifying_cte');
    }
    return ctx;
  }

  private returning(n: Obj, ctx: Ctx): boolean {
    const list = isObj(n.returningClause) ? n.returningClause.exprs : n.returningList;
    this.targets(list, ctx, 'returning');
    return asArray(list).length > 0;
  }

  private setTargets(list: unknown, table: string | undefined, ctx: Ctx): void {
    for (const item of asArray(list)) {
      const rt = unwrap(item, 'ResTarget');
      if (!rt) continue;
      if (typeof rt.name === 'string') this.column(ctx, { table, column: rt.name, clause: 'set' });
      this.walk(rt.indirection, at(ctx, 'expression', 'set'));
      this.walk(rt.val, at(ctx, 'expression', 'set'));
    }
  }

  insert(n: Obj, outer: Ctx): void {
    const ctx = this.dmlStart('insert', n, outer);
    const table = this.rangeVar(n.relation, ctx, 'write');
    this.setTargets(n.cols, table, ctx);
    this.walk(n.selectStmt, nest(ctx, 'expression'));
    const conflict = isObj(n.onConflictClause) ? n.onConflictClause : undefined;
    if (conflict) {
      ctx.scope.aliases.set('excluded', table);
      if (conflict.action === 'ONCONFLICT_UPDATE') this.out.effects.add('upsert');
      this.walk(conflict.infer, at(ctx, 'expression'));
      this.setTargets(conflict.targetList, table, ctx);
      this.walk(conflict.whereClause, at(ctx, 'where'));
    }
    if ((this.returning(n, ctx) || conflict) && table) this.out.read.add(table);
  }

  update(n: Obj, outer: Ctx): void {
    const ctx = this.dmlStart('update', n, outer);
    const table = this.rangeVar(n.relation, ctx, 'both');
    this.walk(n.fromClause, at(ctx, 'from'));
    this.setTargets(n.targetList, table, ctx);
    this.walk(n.whereClause, at(ctx, 'where'));
    this.returning(n, ctx);
    if (outer.executing) this.out.markBounded(n.whereClause);
  }

  delete(n: Obj, outer: Ctx): void {
    const ctx = this.dmlStart('delete', n, outer);
    this.rangeVar(n.relation, ctx, 'both');
    this.walk(n.usingClause, at(ctx, 'from'));
    this.walk(n.whereClause, at(ctx, 'where'));
    this.returning(n, ctx);
    if (outer.executing) this.out.markBounded(n.whereClause);
  }

  merge(n: Obj, outer: Ctx): void {
    const ctx = this.dmlStart('merge', n, outer);
    const table = this.rangeVar(n.relation, ctx, 'both');
    this.walk(n.sourceRelation, at(ctx, 'from'));
    this.walk(n.joinCondition, at(ctx, 'join'));
    for (const item of asArray(n.mergeWhenClauses)) {
      const w = unwrap(item, 'MergeWhenClause');
      if (!w) continue;
      this.walk(w.condition, at(ctx, 'where'));
      this.setTargets(w.targetList, table, ctx);
      this.walk(w.values, at(ctx, 'expression'));
    }
    this.returning(n, ctx);
  }

  funcCall(n: Obj, ctx: Ctx): void {
    const parts = strings(n.funcname);
    this.out.functions.add(parts.map(part).join('.'));
    const bare = parts[parts.length - 1] ?? '';
    const args = asArray(n.args);
    if (bare === 'set_config') {
      this.out.effects.add('set_config');
      const name = constText(args[0]);
      if (name === undefined) {
        this.out.opaque = true;
        this.out.effects.add('dynamic_setting');
      } else {
        this.out.setting = { name: name.toLowerCase(), value: constText(args[1]) };
      }
    }
    if (DYNAMIC_SQL_FUNCTIONS.has(bare) || bare.startsWith('dblink')) {
      this.out.opaque = true;
      this.out.effects.add('dynamic_sql');
    }
    const inner: Ctx = { ...ctx, clause: ctx.clause === 'target' || ctx.clause === 'returning' ? 'expression' : ctx.clause };
    for (const [k, child] of Object.entries(n)) {
      if (k === 'over' && isObj(child)) this.windowDef(child, inner);
      else if (k !== 'funcname') this.walk(child, inner);
    }
  }

  columnRef(n: Obj, ctx: Ctx): void {
    const fields = asArray(n.fields);
    const star = fields.length > 0 && isObj(fields[fields.length - 1]) && 'A_Star' in (fields[fields.length - 1] as Obj);
    const names = strings(fields);
    const only = ctx.scope.tables.length === 1 ? ctx.scope.tables[0] : undefined;
    if (names.length === 0) {
      if (ctx.scope.tables.length === 0) this.column(ctx, { column: '*', clause: ctx.clause });
      for (const table of ctx.scope.tables) this.column(ctx, { table, column: '*', clause: ctx.clause });
      return;
    }
    if (names.length === 1 && !star) {
      const alias = resolveAlias(names[0], ctx.scope);
      // A whole row used in a condition keeps the condition's clause: where it is used is what decides whether it can reveal values.
      if (alias.found) this.column(ctx, { table: alias.table ?? names[0], column: '*', clause: CONDITION_CLAUSES.has(ctx.clause) ? ctx.clause : 'whole_row' });
      else this.column(ctx, { table: only, column: names[0], clause: ctx.clause });
      return;
    }
    const qualifier = star ? names : names.slice(0, -1);
    const column = star ? '*' : names[names.length - 1];
    const alias = qualifier.length === 1 ? resolveAlias(qualifier[0], ctx.scope) : { found: false };
    const table = alias.found ? (alias.table ?? qualifier[0]) : qualifier.map(part).join('.');
    this.column(ctx, { table, column, clause: ctx.clause });
  }
}

const rootCtx = (executing = true): Ctx => ({ scope: newScope(), clause: 'expression', section: 'expression', nested: false, executing, inCte: false });

function explainAnalyzes(options: unknown): boolean {
  for (const o of asArray(options)) {
    const d = unwrap(o, 'DefElem');
    if (!d || d.defname !== 'analyze') continue;
    const arg = d.arg === undefined ? 'true' : (constText(d.arg) ?? (isObj(d.arg) && isObj(d.arg.String) ? String(d.arg.String.sval) : 'true'));
    return !['false', 'off', '0', 'no'].includes(arg.toLowerCase());
  }
  return false;
}

function settingValue(args: unknown): string | undefined {
  const values = asArray(args).map((a) => constText(a) ?? (unwrap(a, 'DefElem') ? `${unwrap(a, 'DefElem')!.defname}=${constText(unwrap(a, 'DefElem')!.arg) ?? ''}` : '?'));
  return values.length > 0 ? values.join(', ') : undefined;
}

const SENSITIVE_SETTINGS: Record<string, string> = {
  role: 'set_role',
  session_authorization: 'set_session_authorization',
  search_path: 'set_search_path',
};

export type FactsWithoutText = Omit<StatementFacts, 'text'>;

/** Facts for one top-level parse node (`{ SelectStmt: {...} }`). */
export function extractStatement(stmt: Obj): FactsWithoutText {
  const type = Object.keys(stmt)[0] ?? '';
  const node = isObj(stmt[type]) ? (stmt[type] as Obj) : {};
  const out = new Collector();
  const w = new Walker(out);
  let kind = kindOfNode(type, node);
  let preparedName: string | undefined;
  let body: StatementFacts | undefined;
  let copy: CopyFacts | undefined;
  const ctx = rootCtx();
  const ddlWrite = (fields: string[]) => {
    for (const f of fields) if (node[f] !== undefined) w.rangeVar(node[f], ctx, 'write');
    // A view's query is stored, its rows are not returned: its columns are nested like CREATE TABLE AS.
    for (const [k, v] of Object.entries(node)) if (!fields.includes(k)) w.walk(v, k === 'query' ? nest(ctx, 'expression') : ctx);
  };

  switch (type) {
    case 'ExplainStmt': {
      const inner = extractStatement(isObj(node.query) ? node.query : {});
      if (explainAnalyzes(node.options)) return { ...inner, effects: [...inner.effects, 'explain_analyze'] };
      return {
        kind: 'explain',
        tablesRead: [...new Set([...inner.tablesRead, ...inner.tablesWritten])],
        tablesWritten: [],
        columns: inner.columns,
        functions: inner.functions,
        opaque: inner.opaque,
        effects: [],
      };
    }
    case 'PrepareStmt': {
      preparedName = String(node.name ?? '');
      const inner = extractStatement(isObj(node.query) ? node.query : {});
      body = { ...inner, text: '' };
      return { ...inner, kind: 'prepare', preparedName, body, bounded: inner.bounded };
    }
    case 'DeclareCursorStmt': {
      const inner = extractStatement(isObj(node.query) ? node.query : {});
      return { ...inner, effects: [...inner.effects, 'declare_cursor'] };
    }
    case 'CreateTableAsStmt': {
      if (isObj(node.into)) w.rangeVar(node.into.rel, ctx, 'write');
      w.walk(node.query, nest(ctx, 'expression'));
      out.effects.add(node.objtype === 'OBJECT_MATVIEW' ? 'create_matview' : 'create_table_as');
      if (node.is_select_into) out.effects.add('select_into');
      break;
    }
    case 'CopyStmt': {
      copy = copyFacts(node);
      const table = node.relation !== undefined ? w.rangeVar(node.relation, ctx, node.is_from ? 'write' : 'read') : undefined;
      if (table) for (const column of copy.columns ?? ['*']) out.column({ table, column, clause: 'target' });
      if (isObj(node.query)) {
        const qType = Object.keys(node.query)[0] ?? '';
        w.walk(node.query, ctx);
        if (DML_KINDS.has(kindOfNode(qType, {}))) kind = kindOfNode(qType, {});
      }
      w.walk(node.whereClause, at(ctx, 'where'));
      if (typeof node.filename === 'string') out.effects.add(node.is_program ? 'copy_program' : 'copy_file');
      else out.effects.add(node.is_from ? 'copy_stdin' : 'copy_stdout');
      break;
    }
    case 'RuleStmt':
      w.rangeVar(node.relation, ctx, 'write');
      w.walk(node.whereClause, at(ctx, 'where'));
      w.walk(node.actions, { ...ctx, executing: false });
      out.effects.add('create_rule');
      break;
    case 'CreateFunctionStmt':
      out.opaque = true;
      out.effects.add(node.is_procedure ? 'create_procedure' : 'create_function');
      w.walk(node.parameters, ctx);
      w.walk(node.sql_body, { ...ctx, executing: false });
      break;
    case 'CreateTrigStmt':
      w.rangeVar(node.relation, ctx, 'write');
      out.functions.add(strings(node.funcname).map(part).join('.'));
      w.walk(node.whenClause, at(ctx, 'where'));
      out.effects.add('create_trigger');
      break;
    case 'DoStmt':
      out.opaque = true;
      break;
    case 'CallStmt':
      out.opaque = true;
      if (isObj(node.funccall)) w.funcCall(node.funccall, ctx);
      break;
    case 'ExecuteStmt':
      out.opaque = true;
      preparedName = String(node.name ?? '');
      w.walk(node.params, ctx);
      break;
    case 'DeallocateStmt':
      if (typeof node.name === 'string') preparedName = node.name;
      break;
    case 'VariableSetStmt':
    case 'AlterSystemStmt': {
      const set = type === 'AlterSystemStmt' ? unwrapSet(node.setstmt) : node;
      const name = set.kind === 'VAR_RESET_ALL' ? 'all' : String(set.name ?? '').toLowerCase();
      out.setting = { name, value: set.kind === 'VAR_SET_VALUE' || set.kind === 'VAR_SET_MULTI' ? settingValue(set.args) : undefined };
      if (SENSITIVE_SETTINGS[name]) out.effects.add(SENSITIVE_SETTINGS[name]);
      if (set.is_local) out.effects.add('set_local');
      if (type === 'AlterSystemStmt') out.effects.add('alter_system');
      w.walk(set.args, ctx);
      break;
    }
    case 'VariableShowStmt':
      out.setting = { name: String(node.name ?? '').toLowerCase() };
      break;
    case 'DropStmt':
      if (TABLE_OBJECT_TYPES.has(String(node.removeType))) {
        for (const o of asArray(node.objects)) {
          const list = unwrap(o, 'List');
          if (list) out.written.add(strings(list.items).map(part).join('.'));
        }
      }
      break;
    case 'TruncateStmt':
      for (const rel of asArray(node.relations)) w.rangeVar(rel, ctx, 'write');
      break;
    case 'GrantStmt':
      if (node.objtype === 'OBJECT_TABLE' && node.targtype === 'ACL_TARGET_OBJECT') {
        for (const rel of asArray(node.objects)) w.rangeVar(rel, ctx, 'write');
      }
      break;
    case 'GrantRoleStmt':
      out.effects.add('grant_role');
      break;
    case 'LoadStmt':
      out.effects.add('load_library');
      break;
    case 'LockStmt':
      out.effects.add('lock_table');
      w.walk(node.relations, ctx);
      break;
    default:
      if (kind.startsWith('ddl.')) ddlWrite(['relation', 'view', 'table']);
      else w.walk(stmt, ctx);
  }

  const dml = out.dml[0];
  if (out.effects.has('select_into')) kind = 'ddl.create';
  else if (dml && (kind === 'select' || kind === 'copy.out')) kind = dml;
  const boundedApplies = kind === 'update' || kind === 'delete' || out.bounded !== undefined;
  return {
    kind,
    tablesRead: [...out.read],
    tablesWritten: [...out.written],
    columns: out.columns,
    functions: [...out.functions].filter((f) => f !== ''),
    ...(boundedApplies ? { bounded: out.bounded ?? false } : {}),
    opaque: out.opaque,
    effects: [...out.effects],
    ...(out.setting ? { setting: out.setting } : {}),
    ...(copy ? { copy } : {}),
    ...(preparedName !== undefined ? { preparedName } : {}),
  };
}

function unwrapSet(v: unknown): Obj {
  return unwrap(v, 'VariableSetStmt') ?? (isObj(v) ? v : {});
}
