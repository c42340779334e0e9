/**
 * A snapshot of the backend's catalog: what Sluice needs to trace a result
 * column (RowDescription's table OID and attribute number) back to the table
 * columns its values come from. Pure data and lookups; loading lives in
 * src/protocols/postgres/masking/load-catalog.ts.
 */

export interface CatalogColumn {
  readonly name: string;
  readonly typeOid: number;
  /** A generated column, which COPY TO without a column list leaves out. */
  readonly generated?: boolean;
}

export interface ColumnRef {
  readonly relation: number;
  readonly attnum: number;
}

export type ColumnLineage =
  /** The view column is a plain reference to one column of a table or view. */
  | { readonly kind: 'column'; readonly relation: number; readonly attnum: number }
  /** An expression over these columns (possibly everything the view depends on). */
  | { readonly kind: 'derived'; readonly sources: readonly ColumnRef[] };

export type RelationKind = 'table' | 'view' | 'matview' | 'foreign' | 'partitioned' | 'other';

export interface CatalogRelation {
  readonly oid: number;
  readonly schema: string;
  readonly name: string;
  readonly kind: RelationKind;
  /** attnum -> column; user columns only (attnum > 0, not dropped). */
  readonly columns: ReadonlyMap<number, CatalogColumn>;
  /** Views, materialized views and partitions only: attnum -> lineage (a partition's columns lead to its parent's). */
  readonly lineage?: ReadonlyMap<number, ColumnLineage>;
}

export interface CatalogSnapshot {
  readonly relations: ReadonlyMap<number, CatalogRelation>;
  /** 'schema.name' (unquoted, as stored) -> oid. Ambiguous when names contain dots; resolveRelation does not rely on it. */
  readonly byName: ReadonlyMap<string, number>;
  /** Functions outside pg_catalog and information_schema, as 'schema.name' and bare 'name'. */
  readonly userFunctions: ReadonlySet<string>;
  /** Names of functions in pg_catalog and information_schema; a name in neither set is a function the snapshot has not seen. */
  readonly builtinFunctions: ReadonlySet<string>;
  /** The backend's effective search_path schemas (current_schemas(false)). */
  readonly searchPath: readonly string[];
}

/** pg_class.relkind -> our kind. */
export function relationKind(relkind: string): RelationKind {
  switch (relkind) {
    case 'r':
      return 'table';
    case 'v':
      return 'view';
    case 'm':
      return 'matview';
    case 'f':
      return 'foreign';
    case 'p':
      return 'partitioned';
    default:
      return 'other';
  }
}

/**
 * The base columns a relation column ultimately comes from, following views
 * recursively (cycle-safe). A table column is its own base; 'derived' lineage
 * contributes the bases of all its sources. A column the snapshot cannot
 * follow (unknown relation, view column without lineage) is returned as
 * itself, so callers still see where the trail ends.
 */
export function baseColumns(cat: CatalogSnapshot, relation: number, attnum: number): ColumnRef[] {
  const out = new Map<string, ColumnRef>();
  const seen = new Set<string>();
  const stack: ColumnRef[] = [{ relation, attnum }];
  while (stack.length > 0) {
    const ref = stack.pop()!;
    const key = `${ref.relation}:${ref.attnum}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const rel = cat.relations.get(ref.relation);
    const lineage = rel?.lineage?.get(ref.attnum);
    if (!lineage) {
      out.set(key, { relation: ref.relation, attnum: ref.attnum });
      continue;
    }
    if (lineage.kind === 'column') stack.push({ relation: lineage.relation, attnum: lineage.attnum });
    else for (const s of lineage.sources) stack.push({ relation: s.relation, attnum: s.attnum });
  }
  return [...out.values()].sort((a, b) => a.relation - b.relation || a.attnum - b.attnum);
}

/**
 * Resolves a relation name as written in SQL ('users', 'public.users',
 * '"Users"', 'db.public.users') to OIDs. Qualified: that relation, if any.
 * Unqualified: the first match along searchPath first, then (conservatively,
 * since the client may change its search_path) every other schema's relation
 * of that name. A name that is not valid SQL identifier syntax resolves to
 * nothing.
 */
export function resolveRelation(cat: CatalogSnapshot, name: string): number[] {
  const parts = splitQualifiedName(name);
  if (!parts || parts.length > 3) return [];
  const candidates = nameIndex(cat).get(parts[parts.length - 1]) ?? [];
  if (parts.length > 1) {
    const schema = parts[parts.length - 2];
    return candidates.filter((oid) => cat.relations.get(oid)!.schema === schema);
  }
  const rank = (oid: number): number => {
    const i = cat.searchPath.indexOf(cat.relations.get(oid)!.schema);
    return i < 0 ? cat.searchPath.length : i;
  };
  return [...candidates].sort((a, b) => rank(a) - rank(b) || a - b);
}

const indexes = new WeakMap<CatalogSnapshot, Map<string, number[]>>();

function nameIndex(cat: CatalogSnapshot): Map<string, number[]> {
  let index = indexes.get(cat);
  if (!index) {
    index = new Map();
    for (const rel of cat.relations.values()) {
      const list = index.get(rel.name);
      if (list) list.push(rel.oid);
      else index.set(rel.name, [rel.oid]);
    }
    indexes.set(cat, index);
  }
  return index;
}

/** PostgreSQL's unquoted identifier: any non-ASCII character counts as a letter; only ASCII folds to lower case. */
const UNQUOTED = /[A-Za-z_\u0080-\u{10FFFF}][A-Za-z0-9_$\u0080-\u{10FFFF}]*/uy;

/**
 * Splits a possibly qualified SQL name into identifiers, applying
 * PostgreSQL's rules: unquoted identifiers fold ASCII letters to lower case,
 * quoted ones keep their case and read "" as one quote. Undefined when the
 * text is not a dotted list of identifiers.
 */
export function splitQualifiedName(text: string): string[] | undefined {
  const parts: string[] = [];
  let i = 0;
  const n = text.length;
  const skipSpace = (): void => {
    while (i < n && /\s/.test(text[i])) i++;
  };
  for (;;) {
    skipSpace();
    if (i >= n) return undefined;
    if (text[i] === '"') {
      let ident = '';
      i++;
      for (;;) {
        if (i >= n) return undefined;
        if (text[i] === '"') {
          if (text[i + 1] === '"') {
            ident += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        ident += text[i++];
      }
      if (ident === '') return undefined;
      parts.push(ident);
    } else {
      UNQUOTED.lastIndex = i;
      const m = UNQUOTED.exec(text);
      if (!m) return undefined;
      i += m[0].length;
      parts.push(m[0].replace(/[A-Z]+/g, (u) => u.toLowerCase()));
    }
    skipSpace();
    if (i >= n) return parts;
    if (text[i] !== '.') return undefined;
    i++;
  }
}

/**
 * Relations a name may mean. The facts write unquoted names folded and
 * quoted ones as they are, without quotes unless needed, so `"UserView"`
 * arrives as UserView: a name with capitals is also tried as quoted.
 */
export function resolveLoosely(cat: CatalogSnapshot, name: string): number[] {
  const oids = resolveRelation(cat, name);
  if (name.includes('"') || name === name.toLowerCase()) return oids;
  const quoted = name
    .split('.')
    .map((p) => `"${p}"`)
    .join('.');
  return [...new Set([...oids, ...resolveRelation(cat, quoted)])];
}

/** Whether the snapshot has seen a function of this name, built in or not: one it has not may have been created since. */
export function functionKnown(cat: CatalogSnapshot, name: string): boolean {
  const own = (name.replace(/"/g, '').split('.').pop() ?? name).toLowerCase();
  return cat.builtinFunctions.has(own) || cat.userFunctions.has(own);
}
