import {
  relationKind,
  type CatalogColumn,
  type CatalogRelation,
  type CatalogSnapshot,
  type ColumnLineage,
  type ColumnRef,
} from '../../../masking/catalog.js';
import { estimateDepth, SHORT_TEXT_CHARS, treeDepth, WASM_SAFE_ESTIMATE } from '../../../sql/depth.js';
import { initSqlParser, parseRaw, scanRaw } from '../../../sql/parser.js';
import type { BackendConnection } from '../backend/connect.js';
import { simpleQuery } from '../backend/simple-query.js';

const USER_SCHEMAS = `n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'`;

const RELATIONS_SQL = `
SELECT c.oid, n.nspname, c.relname, c.relkind, a.attnum, a.attname, a.atttypid, a.attgenerated
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND ${USER_SCHEMAS}
ORDER BY c.oid, a.attnum`;

const FUNCTIONS_SQL = `
SELECT DISTINCT n.nspname, p.proname
FROM pg_catalog.pg_proc p
JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace`;

/**
 * Each partition's direct parent when the parent is partitioned (relkind
 * 'p'): RowDescription names the partition a row came from, not the table
 * the query named. Sub-partitions list their partitioned parent, so
 * following the links reaches the root. Plain inheritance children are
 * tables of their own and are not listed.
 */
const PARTITIONS_SQL = `
SELECT i.inhrelid, i.inhparent
FROM pg_catalog.pg_inherits i
JOIN pg_catalog.pg_class p ON p.oid = i.inhparent
WHERE p.relkind = 'p'`;

const SEARCH_PATH_SQL = `SELECT s FROM pg_catalog.unnest(pg_catalog.current_schemas(false)) WITH ORDINALITY AS t(s, i) ORDER BY i`;

/**
 * With an empty search_path every relation in the definition comes out
 * schema-qualified, so an unqualified name in it can only be a CTE. SET LOCAL
 * lasts until the end of the surrounding transaction, so this runs last.
 */
const VIEWS_SQL = `
SET LOCAL search_path = '';
SELECT c.oid, pg_catalog.pg_get_viewdef(c.oid),
  (SELECT pg_catalog.string_agg(d.refobjid::pg_catalog.text || ':' || d.refobjsubid::pg_catalog.text, ',')
   FROM pg_catalog.pg_rewrite r
   JOIN pg_catalog.pg_depend d
     ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND d.objid = r.oid
    AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjsubid >= 0
   WHERE r.ev_class = c.oid AND r.rulename = '_RETURN' AND d.refobjid <> c.oid)
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('v', 'm') AND ${USER_SCHEMAS}`;

/** View definitions longer than this are not parsed: their columns count as derived from everything the view reads. */
const MAX_VIEWDEF_CHARS = 1024 * 1024;
const MAX_TREE_DEPTH = 1000;

/**
 * Reads the catalog snapshot masking needs over an idle backend connection:
 * user relations and columns, user functions, the effective search_path, and
 * per view or partition column the columns it comes from. Seven round trips in one
 * read-only repeatable-read transaction, however many views there are. The
 * connection is idle again afterwards (also after a failure the server
 * reported).
 */
export async function loadCatalog(conn: BackendConnection): Promise<CatalogSnapshot> {
  await initSqlParser();
  await simpleQuery(conn, 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  let rels, funcs, path, partitions, views;
  try {
    rels = await simpleQuery(conn, RELATIONS_SQL);
    funcs = await simpleQuery(conn, FUNCTIONS_SQL);
    path = await simpleQuery(conn, SEARCH_PATH_SQL);
    partitions = await simpleQuery(conn, PARTITIONS_SQL);
    views = await simpleQuery(conn, VIEWS_SQL);
    await simpleQuery(conn, 'COMMIT');
  } catch (err) {
    if (!conn.socket.destroyed) await simpleQuery(conn, 'ROLLBACK').catch(() => undefined);
    throw err;
  }

  const building = new Map<number, { oid: number; schema: string; name: string; relkind: string; columns: Map<number, CatalogColumn> }>();
  for (const [oid, schema, name, relkind, attnum, attname, typeOid, generated] of rels.rows) {
    const id = Number(oid);
    let rel = building.get(id);
    if (!rel) {
      rel = { oid: id, schema: schema!, name: name!, relkind: relkind!, columns: new Map() };
      building.set(id, rel);
    }
    if (attnum !== null) rel.columns.set(Number(attnum), { name: attname!, typeOid: Number(typeOid), ...(generated ? { generated: true } : {}) });
  }

  const byName = new Map<string, number>();
  for (const rel of building.values()) byName.set(`${rel.schema}.${rel.name}`, rel.oid);
  const relations = new Map<number, CatalogRelation>();
  for (const rel of building.values()) {
    relations.set(rel.oid, { oid: rel.oid, schema: rel.schema, name: rel.name, kind: relationKind(rel.relkind), columns: rel.columns });
  }

  const schemaOf = new Map<string, Map<string, number>>();
  for (const rel of relations.values()) {
    let names = schemaOf.get(rel.schema);
    if (!names) schemaOf.set(rel.schema, (names = new Map()));
    names.set(rel.name, rel.oid);
  }
  const lookup = (schema: string, name: string): CatalogRelation | undefined => {
    const oid = schemaOf.get(schema)?.get(name);
    return oid === undefined ? undefined : relations.get(oid);
  };

  for (const [child, parent] of partitions.rows) {
    const partition = relations.get(Number(child));
    const root = relations.get(Number(parent));
    if (partition && root) relations.set(partition.oid, { ...partition, lineage: partitionLineage(partition, root) });
  }

  for (const [oid, definition, deps] of views.rows) {
    const view = relations.get(Number(oid));
    if (!view) continue;
    relations.set(view.oid, { ...view, lineage: viewLineage(view, definition, parseDependencies(deps), relations, lookup) });
  }

  const userFunctions = new Set<string>();
  const builtinFunctions = new Set<string>();
  for (const [schema, name] of funcs.rows) {
    if (schema === 'pg_catalog' || schema === 'information_schema') {
      builtinFunctions.add(name!);
      continue;
    }
    userFunctions.add(`${schema}.${name}`);
    userFunctions.add(name!);
  }
  const searchPath = path.rows.map((r) => r[0]!);
  return { relations, byName, userFunctions, builtinFunctions, searchPath };
}

/**
 * A partition's columns are its parent's, matched by name since attribute
 * numbers differ when the partition was created with another column order
 * or has dropped columns. A column without a same-named parent column
 * cannot happen in a consistent catalog; should it, it counts as derived
 * from every parent column (fail closed).
 */
function partitionLineage(partition: CatalogRelation, parent: CatalogRelation): Map<number, ColumnLineage> {
  const byName = new Map<string, number>();
  for (const [attnum, col] of parent.columns) byName.set(col.name, attnum);
  const everything: ColumnLineage = { kind: 'derived', sources: [...parent.columns.keys()].map((attnum) => ({ relation: parent.oid, attnum })) };
  const lineage = new Map<number, ColumnLineage>();
  for (const [attnum, col] of partition.columns) {
    const target = byName.get(col.name);
    lineage.set(attnum, target === undefined ? everything : { kind: 'column', relation: parent.oid, attnum: target });
  }
  return lineage;
}

/** 'oid:attnum' pairs; attnum 0 is a dependency on the whole relation. */
function parseDependencies(text: string | null): ColumnRef[] {
  if (!text) return [];
  return text.split(',').map((item) => {
    const [relation, attnum] = item.split(':').map(Number);
    return { relation, attnum };
  });
}

/**
 * The columns a 'derived' view column may come from. pg_depend records a
 * whole-row reference as a dependency on the relation (attnum 0), and drops
 * it when the view also names a column of that relation; so a relation
 * dependency counts as all its columns, and `widen` (a whole-row reference
 * seen, or a definition we could not read) makes every relation the view
 * reads count with all its columns.
 */
function derivedSources(deps: readonly ColumnRef[], relations: ReadonlyMap<number, CatalogRelation>, widen: boolean): ColumnRef[] {
  const out = new Map<string, ColumnRef>();
  const add = (relation: number, attnum: number): void => {
    out.set(`${relation}:${attnum}`, { relation, attnum });
  };
  for (const d of deps) {
    const columns = relations.get(d.relation)?.columns;
    if ((d.attnum === 0 || widen) && columns && columns.size > 0) for (const attnum of columns.keys()) add(d.relation, attnum);
    else if (d.attnum !== 0) add(d.relation, d.attnum);
  }
  return [...out.values()];
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);

/**
 * Lineage of each view column: a plain column reference to a relation in the
 * view's top-level FROM becomes 'column'; everything else, and every column
 * of a definition that cannot be read with certainty, is 'derived' from the
 * columns the view depends on (fail closed).
 */
function viewLineage(
  view: CatalogRelation,
  definition: string | null,
  deps: readonly ColumnRef[],
  relations: ReadonlyMap<number, CatalogRelation>,
  lookup: (schema: string, name: string) => CatalogRelation | undefined,
): Map<number, ColumnLineage> {
  const parsed = definition === null ? undefined : parseDefinition(definition);
  const derived: ColumnLineage = { kind: 'derived', sources: derivedSources(deps, relations, !parsed || parsed.wholeRow) };
  const lineage = new Map<number, ColumnLineage>();
  for (const attnum of view.columns.keys()) lineage.set(attnum, derived);
  if (!parsed?.targets) return lineage;
  const { list, from } = parsed.targets;
  const attnums = [...view.columns.keys()].sort((a, b) => a - b);
  // pg_get_viewdef lists one target per view column in attnum order; anything else means we misread it.
  if (list.length !== attnums.length || attnums.some((a, i) => a !== i + 1)) return lineage;
  const depends = new Set(deps.map((s) => `${s.relation}:${s.attnum}`));
  const scope = fromScope(from, lookup);
  list.forEach((val, i) => {
    const ref = plainColumn(val, scope);
    if (ref && depends.has(`${ref.relation}:${ref.attnum}`)) lineage.set(i + 1, { kind: 'column', ...ref });
  });
  return lineage;
}

interface ParsedDefinition {
  /** Top-level target expressions and FROM items; absent for set operations and VALUES. */
  targets?: { list: unknown[]; from: unknown[] };
  /** Some column reference may denote a whole row rather than a column. */
  wholeRow: boolean;
}

function parseDefinition(definition: string): ParsedDefinition | undefined {
  if (definition.length > MAX_VIEWDEF_CHARS) return undefined;
  let tree: { stmts?: { stmt?: Obj }[] };
  try {
    if (definition.length > SHORT_TEXT_CHARS && estimateDepth(scanRaw(definition)) > WASM_SAFE_ESTIMATE) return undefined;
    tree = parseRaw(definition);
  } catch {
    return undefined;
  }
  // The walks below recurse; the classifier's limit keeps them on the stack.
  if (treeDepth(tree, MAX_TREE_DEPTH) > MAX_TREE_DEPTH) return undefined;
  const stmts = tree.stmts ?? [];
  if (stmts.length !== 1) return undefined;
  const select = stmts[0].stmt?.SelectStmt;
  if (!isObj(select)) return undefined;
  const wholeRow = mayReferenceWholeRow(select);
  if (select.op !== 'SETOP_NONE' || !Array.isArray(select.targetList)) return { wholeRow };
  const list = select.targetList.map((t) => (isObj(t) && isObj(t.ResTarget) ? t.ResTarget.val : undefined));
  return { targets: { list, from: Array.isArray(select.fromClause) ? select.fromClause : [] }, wholeRow };
}

/**
 * Whole-row references print as `alias.*` or as the bare range name (`u`,
 * `u.*::app.users`). Any ColumnRef with a star, or whose last name is the
 * name of a range item anywhere in the tree, counts: a column that happens to
 * share a range name only widens what derived columns count as sources.
 */
function mayReferenceWholeRow(root: Obj): boolean {
  const rangeNames = new Set<string>();
  const refs: unknown[][] = [];
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) {
      for (const item of node) walk(item);
      return;
    }
    if (!isObj(node)) return;
    if (isObj(node.ColumnRef) && Array.isArray(node.ColumnRef.fields)) refs.push(node.ColumnRef.fields);
    if (isObj(node.RangeVar) && typeof node.RangeVar.relname === 'string') rangeNames.add(node.RangeVar.relname);
    if (isObj(node.alias) && typeof node.alias.aliasname === 'string') rangeNames.add(node.alias.aliasname);
    if (typeof node.ctename === 'string') rangeNames.add(node.ctename);
    for (const value of Object.values(node)) if (typeof value === 'object') walk(value);
  };
  walk(root);
  return refs.some((fields) => {
    const lastField = fields[fields.length - 1];
    if (isObj(lastField) && 'A_Star' in lastField) return true;
    const name = isObj(lastField) && isObj(lastField.String) ? lastField.String.sval : undefined;
    return typeof name === 'string' && rangeNames.has(name);
  });
}

interface FromScope {
  /** Reference name -> relation, or null for a subquery, function, CTE or a name used twice. */
  names: Map<string, CatalogRelation | null>;
  /** The relation when FROM holds exactly one item and it is a known relation: bare column names refer to it. */
  only?: CatalogRelation;
}

function fromScope(from: unknown[], lookup: (schema: string, name: string) => CatalogRelation | undefined): FromScope {
  const names = new Map<string, CatalogRelation | null>();
  const bind = (name: unknown, rel: CatalogRelation | null): void => {
    if (typeof name !== 'string') return;
    names.set(name, names.has(name) ? null : rel);
  };
  const visit = (node: unknown): void => {
    if (!isObj(node)) return;
    if (isObj(node.RangeVar)) {
      const rv = node.RangeVar;
      const rel = typeof rv.schemaname === 'string' && typeof rv.relname === 'string' && rv.catalogname === undefined ? lookup(rv.schemaname, rv.relname) : undefined;
      bind(isObj(rv.alias) ? rv.alias.aliasname : rv.relname, rel ?? null);
    } else if (isObj(node.JoinExpr)) {
      const j = node.JoinExpr;
      visit(j.larg);
      visit(j.rarg);
      if (isObj(j.alias)) bind(j.alias.aliasname, null);
    } else {
      for (const inner of Object.values(node)) {
        if (isObj(inner) && isObj(inner.alias)) bind(inner.alias.aliasname, null);
      }
    }
  };
  from.forEach(visit);
  let only: CatalogRelation | undefined;
  if (from.length === 1 && isObj(from[0]) && isObj(from[0].RangeVar)) {
    const [single] = [...names.values()];
    only = single ?? undefined;
  }
  return { names, only };
}

function plainColumn(val: unknown, scope: FromScope): ColumnRef | undefined {
  if (!isObj(val) || !isObj(val.ColumnRef) || !Array.isArray(val.ColumnRef.fields)) return undefined;
  const parts = val.ColumnRef.fields.map((f) => (isObj(f) && isObj(f.String) && typeof f.String.sval === 'string' ? f.String.sval : undefined));
  if (parts.some((p) => p === undefined)) return undefined;
  let rel: CatalogRelation | undefined;
  let column: string;
  if (parts.length === 1) {
    rel = scope.only;
    column = parts[0]!;
  } else if (parts.length === 2) {
    rel = scope.names.get(parts[0]!) ?? undefined;
    column = parts[1]!;
  } else {
    return undefined;
  }
  if (!rel) return undefined;
  const matches = [...rel.columns].filter(([, c]) => c.name === column);
  return matches.length === 1 ? { relation: rel.oid, attnum: matches[0][0] } : undefined;
}
