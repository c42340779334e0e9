import { statementLabel } from '../guard/describe.js';
import { functionMatches } from '../guard/patterns.js';
import { showName } from '../policy/format.js';
import type { ColumnClause, ColumnUse, StatementFacts } from '../sql/index.js';
import { resolveRelation, type CatalogSnapshot } from './catalog.js';
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

type Finding = { readonly kind: 'predicate' | 'indirect'; readonly what: string };

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
    for (const f of top.body ? [top, top.body] : [top]) {
      const finding = examine(f, masked);
      if (finding === undefined) continue;
      const policies = masked.plan.policies.map(showName).join(', ');
      const label = statementLabel(f);
      if (finding.kind === 'predicate') {
        return deny(`${label} uses masked column ${finding.what}; masked columns cannot decide which rows return or their order, as that reveals their values (masking policy ${policies})`);
      }
      if (masked.plan.indirect === 'mask' && outputOnly(f)) {
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
  if ((f.tablesWritten ?? []).length > 0) return false;
  if ((f.effects ?? []).some((e) => e === 'select_into' || e === 'data_modifying_cte')) return false;
  return f.kind === 'select' || f.kind === 'explain' || f.kind === 'copy.out' || f.kind === 'execute';
}

function examine(f: StatementFacts, masked: MaskedColumns): Finding | undefined {
  if (masked.byOid.size === 0) return undefined;
  const cat = masked.catalog;
  const read = (f.tablesRead ?? []).flatMap((t) => resolveRelation(cat, t));
  let indirect: Finding | undefined;
  for (const u of f.columns ?? []) {
    // A column an INSERT or UPDATE assigns is written, not read.
    if (u.clause === 'set' && !u.nested) continue;
    const hit = maskedHit(u, read, masked);
    if (hit === undefined) continue;
    const where = u.nested ? (u.via ?? 'expression') : u.clause;
    if (PREDICATES.has(u.clause) || PREDICATES.has(where)) return { kind: 'predicate', what: `${hit} in ${CLAUSE_WORDS[PREDICATES.has(u.clause) ? u.clause : where]}` };
    if (!direct(u, f)) indirect ??= { kind: 'indirect', what: `${hit} in ${u.nested ? nestedWords(where) : (CLAUSE_WORDS[u.clause] ?? 'an expression')}` };
  }
  if (indirect) return indirect;
  const fn = (f.functions ?? []).find((name) => isUserFunction(cat, name) && !masked.plan.functions.some((p) => functionMatches(p, name)));
  if (fn !== undefined) return { kind: 'indirect', what: `data through user-defined function ${showName(fn)}, which masking cannot see into (masking.functions can allow-list it)` };
  if (f.opaque !== false || f.kind === 'do' || f.kind === 'call') return { kind: 'indirect', what: 'data through a statement whose effect cannot be read from its text' };
  return undefined;
}

/** A masked column selected as itself at the top level: its origin reaches RowDescription, or the COPY column list. */
function direct(u: ColumnUse, f: StatementFacts): boolean {
  if (u.nested) return false;
  if (u.clause === 'returning') return true;
  if (u.clause !== 'target') return false;
  // COPY (query) TO sends no RowDescription: nothing names the origin of its columns.
  if (f.kind === 'copy.out') return f.copy?.query !== true;
  return f.kind === 'select' || f.kind === 'explain' || f.kind === 'execute' || (f.effects ?? []).includes('declare_cursor');
}

/** The masked column a use reads, as schema.table.column, if any. */
function maskedHit(u: ColumnUse, read: readonly number[], masked: MaskedColumns): string | undefined {
  const cat = masked.catalog;
  const relations = u.table !== undefined ? resolveRelation(cat, u.table) : read;
  const column = u.column.toLowerCase();
  for (const oid of relations) {
    const cols = masked.byOid.get(oid);
    const rel = cat.relations.get(oid);
    if (!cols || !rel) continue;
    for (const attnum of cols.keys()) {
      const name = rel.columns.get(attnum)?.name;
      if (name !== undefined && (column === '*' || name.toLowerCase() === column)) return showName(`${rel.schema}.${rel.name}.${name}`);
    }
  }
  return undefined;
}

function isUserFunction(cat: CatalogSnapshot, name: string): boolean {
  const bare = name.replace(/"/g, '');
  const lower = bare.toLowerCase();
  if (lower.startsWith('pg_catalog.') || lower.startsWith('information_schema.')) return false;
  return cat.userFunctions.has(bare) || cat.userFunctions.has(lower) || cat.userFunctions.has(bare.split('.').pop() ?? bare);
}
