import { statementLabel } from '../guard/describe.js';
import { functionMatches, globSegment, nameSegments } from '../guard/patterns.js';
import { showName } from '../policy/format.js';
import type { ColumnClause, ColumnUse, StatementFacts } from '../sql/index.js';
import { resolveLoosely, type CatalogSnapshot } from './catalog.js';
import type { MaskedColumns } from './resolve.js';

export const MASKING_RULE = 'sluice-masking';

/** What a statement's result needs beyond masking its columns by origin. */
export interface OutputMasking {
  /** Every column of the result is masked: the statement computes values from masked columns (indirect: mask). */
  readonly maskAll: boolean;
}

export type MaskVerdict =
  | ({ readonly action: 'allow' } & OutputMasking)
  | { readonly action: 'deny'; readonly rule: string; readonly reason: string; readonly sqlstate: '42501' };

/** Uses that decide which rows come back, or in which order: masking the output cannot hide what they reveal. */
const PREDICATES: ReadonlySet<ColumnClause> = new Set(['where', 'join', 'order', 'group', 'having']);

const CLAUSE_WORDS: Partial<Record<ColumnClause, string>> = {
  where: 'a WHERE condition',
  join: 'a JOIN condition',
  order: 'ORDER BY, DISTINCT ON or a window',
  group: 'GROUP BY',
  having: 'HAVING',
  expression: 'an expression (a function, cast, operator or aggregate)',
  whole_row: 'a whole-row reference',
  from: 'a derived table',
  cte: 'a WITH query',
  setop: 'a UNION, INTERSECT or EXCEPT',
};

function nestedWords(via: ColumnClause): string {
  if (via === 'expression') return 'a query whose rows are stored (INSERT ... SELECT, CREATE TABLE AS, a view, SELECT INTO)';
  if (via === 'target' || via === 'returning') return 'a scalar subquery';
  if (via === 'set') return 'a subquery of SET';
  return CLAUSE_WORDS[via] ?? 'a subquery';
}

type Finding = { readonly kind: 'predicate' | 'indirect' | 'always'; readonly what: string };

/**
 * Judges, before it runs, whether a statement may read masked columns the
 * way it does. Selecting a masked column is fine: the result is masked by
 * the column's origin. Any other read could carry the raw value out where
 * the origin is lost (lower(email), row_to_json(u), a UNION, a view or
 * table created from it) or reveal it without returning it (WHERE email
 * LIKE 'a%'). Conditions are always denied; other indirect reads are
 * denied, or with `indirect: mask` the whole result is masked. Pure.
 */
export function judgeMasking(statements: readonly StatementFacts[], masked: MaskedColumns): MaskVerdict {
  let maskAll = false;
  for (const top of statements) {
    // A PREPARE's own facts repeat its body's: only what it will run is judged.
    for (const f of top.kind === 'prepare' && top.body ? [top.body] : top.body ? [top, top.body] : [top]) {
      const finding = examineCached(f, masked);
      if (finding === undefined) continue;
      const policies = masked.plan.policies.map(showName).join(', ');
      const label = statementLabel(f);
      if (finding.kind === 'always') return deny(`${label} reads ${finding.what} (masking policy ${policies})`);
      if (finding.kind === 'predicate') {
        return deny(`${label} uses masked column ${finding.what}; masked columns cannot decide which rows return or their order, as that reveals their values (masking policy ${policies})`);
      }
      // A prepared body runs later, maybe through a portal the output decision does not reach: only EXECUTE can be masked whole.
      if (masked.plan.indirect === 'mask' && top.kind !== 'prepare' && outputOnly(f)) {
        maskAll = true;
        continue;
      }
      return deny(
        `${label} reads masked column ${finding.what}, so its result could carry the raw value; select the column itself to receive it masked, or ask for an exemption in masking policy ${policies}`,
      );
    }
  }
  return { action: 'allow', maskAll };
}

function deny(reason: string): MaskVerdict {
  return { action: 'deny', rule: MASKING_RULE, reason: `sluice: ${reason}`, sqlstate: '42501' };
}

/** Statements whose only effect is their output, which masking every column can make safe. */
function outputOnly(f: StatementFacts): boolean {
  if ((f.tablesWritten ?? []).length > 0 || f.setting !== undefined) return false;
  // A cursor's rows come back in later FETCHes and a setting in ParameterStatus, where the statement's output decision does not follow.
  if ((f.effects ?? []).some((e) => e === 'select_into' || e === 'data_modifying_cte' || e === 'declare_cursor' || e === 'set_config')) return false;
  return f.kind === 'select' || f.kind === 'explain' || f.kind === 'copy.out' || f.kind === 'execute';
}

/**
 * Findings per statement facts object, per resolved masking: facts come from
 * the classification cache, so a statement run again is judged once while the
 * catalog snapshot and the plan stay the same.
 */
const findings = new WeakMap<MaskedColumns, WeakMap<StatementFacts, Finding | null>>();

function examineCached(f: StatementFacts, masked: MaskedColumns): Finding | undefined {
  let byFacts = findings.get(masked);
  if (!byFacts) findings.set(masked, (byFacts = new WeakMap()));
  let found = byFacts.get(f);
  if (found === undefined) byFacts.set(f, (found = examine(f, masked) ?? null));
  return found ?? undefined;
}

function examine(f: StatementFacts, masked: MaskedColumns): Finding | undefined {
  if (masked.byOid.size === 0 && masked.plan.columns.length === 0) return undefined;
  const cat = masked.catalog;
  const stats = (f.tablesRead ?? []).find((t) => STATISTICS.test(t.replace(/"/g, '').toLowerCase()));
  if (stats !== undefined) return { kind: 'always', what: `${showName(stats)}, which holds sampled values of every column, masked ones included` };
  // Another output encoding changes the bytes the COPY row parser reads (a multi-byte character can end in a backslash byte).
  if (f.kind === 'copy.out' && /\bencoding\b/i.test(f.text ?? '')) return { kind: 'always', what: 'its rows in another encoding (COPY ... ENCODING), which masking cannot parse safely' };
  let indirect: Finding | undefined;
  // COPY FROM names the columns it fills, and its WHERE sees only the caller's own rows: no column use of it reads stored data.
  for (const u of f.kind === 'copy.in' ? [] : (f.columns ?? [])) {
    // A column an INSERT or UPDATE assigns is written, not read.
    if (u.clause === 'set' && !u.nested) continue;
    const hit = maskedHit(u, f, masked);
    if (hit === undefined) continue;
    const where = u.nested ? (u.via ?? 'expression') : u.clause;
    // A set operation compares rows (INTERSECT, EXCEPT, UNION's de-duplication): a condition in all but name.
    if (PREDICATES.has(u.clause) || PREDICATES.has(where) || where === 'setop') {
      return { kind: 'predicate', what: `${hit} in ${CLAUSE_WORDS[PREDICATES.has(u.clause) ? u.clause : where]}` };
    }
    if (!direct(u, f)) indirect ??= { kind: 'indirect', what: `${hit} in ${u.nested ? nestedWords(where) : (CLAUSE_WORDS[u.clause] ?? 'an expression')}` };
  }
  if (indirect) return indirect;
  // A function's result can be filtered, counted or made to fail on values masking never sees: masking its output is not enough.
  const fn = (f.functions ?? []).find((name) => isUserFunction(cat, name) && !masked.plan.functions.some((p) => functionMatches(p, name)));
  if (fn !== undefined) return { kind: 'always', what: `user-defined function ${showName(fn)}, which could read masked columns where masking cannot see (masking.functions can allow-list it)` };
  if (f.opaque !== false || f.kind === 'do' || f.kind === 'call') return { kind: 'indirect', what: 'data through a statement whose effect cannot be read from its text' };
  return undefined;
}

/** Catalog views and tables that expose sampled column values (most common values, histogram bounds). */
const STATISTICS = /^(pg_catalog\.)?pg_(stats|stats_ext|stats_ext_exprs|statistic|statistic_ext|statistic_ext_data)$/;

/** A masked column selected as itself at the top level: its origin reaches RowDescription, or the COPY column list. */
function direct(u: ColumnUse, f: StatementFacts): boolean {
  if (u.nested) return false;
  if (u.clause === 'returning') return true;
  if (u.clause !== 'target') return false;
  // COPY (query) TO sends no RowDescription: nothing names the origin of its columns.
  if (f.kind === 'copy.out') return f.copy?.query !== true;
  return f.kind === 'select' || f.kind === 'explain' || f.kind === 'execute' || (f.effects ?? []).includes('declare_cursor');
}

/**
 * The masked column a use reads, as schema.table.column, if any. A relation
 * the catalog does not know (created since it was read) is judged by name
 * against the masking patterns instead.
 */
function maskedHit(u: ColumnUse, f: StatementFacts, masked: MaskedColumns): string | undefined {
  const cat = masked.catalog;
  const column = u.column.toLowerCase();
  // In a sub-select an unqualified name may belong to an outer query's table: every table read is a candidate.
  const tables = u.table === undefined ? (f.tablesRead ?? []) : u.nested ? [u.table, ...(f.tablesRead ?? [])] : [u.table];
  const read = new Set(f.tablesRead ?? []);
  for (const table of tables) {
    const oids = resolveLoosely(cat, table);
    // A name no relation read has is the alias of a derived table, function or CTE: what it reads is judged where it is read.
    if (oids.length === 0 && read.has(table)) {
      const byName = masked.plan.columns.find((r) => nameMatches(r.pattern, table, column));
      if (byName) return showName(`${table}.${u.column}`);
      continue;
    }
    for (const oid of oids) {
      const cols = masked.byOid.get(oid);
      const rel = cat.relations.get(oid);
      if (!cols || !rel) continue;
      for (const attnum of cols.keys()) {
        const name = rel.columns.get(attnum)?.name;
        if (name !== undefined && (column === '*' || name.toLowerCase() === column)) return showName(`${rel.schema}.${rel.name}.${name}`);
      }
    }
  }
  return undefined;
}

/** A pattern against a name as written: an unqualified table may be in any schema, `*` may be any column. */
function nameMatches(pattern: string, table: string, column: string): boolean {
  const segs = nameSegments(table);
  const [ps, pt, pc] = nameSegments(pattern) as [string, string, string];
  if (column !== '*' && !globSegment(pc, column)) return false;
  if (!globSegment(pt, segs[segs.length - 1] ?? '')) return false;
  return segs.length < 2 || globSegment(ps, segs[segs.length - 2]!);
}

/**
 * A function that is not built in: one the catalog lists outside
 * pg_catalog, or one it has never seen (created since it was read), which
 * is treated the same way.
 */
function isUserFunction(cat: CatalogSnapshot, name: string): boolean {
  const bare = name.replace(/"/g, '');
  const lower = bare.toLowerCase();
  if (lower.startsWith('pg_catalog.') || lower.startsWith('information_schema.')) return false;
  const own = bare.split('.').pop() ?? bare;
  const builtin = cat.builtinFunctions.has(own) || cat.builtinFunctions.has(own.toLowerCase());
  // Unqualified, a built-in name is the built-in (pg_catalog comes first on the search path), even when an extension overloads it.
  if (builtin && !bare.includes('.')) return false;
  if (cat.userFunctions.has(bare) || cat.userFunctions.has(lower)) return true;
  return !builtin;
}
