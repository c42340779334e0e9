/**
 * Neutral facts about one SQL statement, produced from the real PostgreSQL
 * parse tree. The guard judges these; it never looks at keywords.
 */
export type StatementKind =
  | 'select'
  | 'insert'
  | 'update'
  | 'delete'
  | 'merge'
  | 'ddl.create'
  | 'ddl.alter'
  | 'ddl.drop'
  | 'truncate'
  | 'copy.in'
  | 'copy.out'
  | 'grant'
  | 'revoke'
  | 'role'
  | 'set'
  | 'reset'
  | 'show'
  | 'transaction'
  | 'explain'
  | 'utility'
  | 'prepare'
  | 'execute'
  | 'deallocate'
  | 'call'
  | 'do'
  | 'other';

export type ColumnClause =
  | 'target'
  | 'expression'
  | 'where'
  | 'join'
  | 'order'
  | 'group'
  | 'having'
  | 'returning'
  | 'set'
  | 'whole_row'
  /** Expressions inside FROM items other than JOIN quals: function arguments, TABLESAMPLE, derived tables. */
  | 'from'
  /** A WITH query's body. */
  | 'cte'
  /** An arm of UNION / INTERSECT / EXCEPT. */
  | 'setop';

export interface ColumnUse {
  /** The table the column belongs to when the text says so (alias resolved), or the only table in scope. */
  table?: string;
  /** `*` for a star or a whole-row reference. */
  column: string;
  clause: ColumnClause;
  /**
   * The reference sits inside a sub-select, so its value reaches the statement's
   * output (if at all) only through that sub-select: a derived table, SubLink,
   * CTE body, set-operation arm, INSERT ... SELECT, SELECT INTO, or the query of
   * CREATE TABLE AS / VIEW. EXPLAIN, DECLARE CURSOR and COPY (query) are not
   * nesting: their query's output is the statement's output.
   */
  nested?: true;
  /**
   * Nested uses only: the outermost statement's clause holding the sub-select
   * ('target' for the select list even inside a function call, 'from', 'where',
   * 'cte', 'setop', 'expression' for INSERT ... SELECT / CREATE ... AS / SELECT INTO).
   */
  via?: ColumnClause;
}

export interface CopyFacts {
  /** `in` is COPY FROM (rows written to the table), `out` is COPY TO. */
  direction: 'in' | 'out';
  format: 'text' | 'csv' | 'binary';
  delimiter?: string;
  quote?: string;
  escape?: string;
  null?: string;
  /** HEADER true, on, 1 or match. */
  header?: boolean;
  /** The column list, when the statement names one. */
  columns?: string[];
  /** COPY (query) TO. */
  query: boolean;
}

export interface StatementFacts {
  kind: StatementKind;
  /** This statement's own source text slice. */
  text: string;
  /** Schema-qualified as far as the text allows; unquoted names are lowercased by the parser, quoted ones kept. */
  tablesRead: string[];
  tablesWritten: string[];
  columns: ColumnUse[];
  /** Every function called anywhere, schema-qualified where written. */
  functions: string[];
  /** DELETE/UPDATE only: a WHERE that can restrict rows (constant or self-comparing conditions do not). */
  bounded?: boolean;
  /** What the text cannot tell: DO, CALL, function bodies, EXECUTE, dynamic SQL. */
  opaque: boolean;
  effects: string[];
  /** SET/RESET, and set_config() with a literal name. */
  setting?: { name: string; value?: string };
  /** COPY only: direction and data format options. */
  copy?: CopyFacts;
  /** PREPARE/EXECUTE/DEALLOCATE: the prepared statement's name. */
  preparedName?: string;
  /** PREPARE: the facts of the statement being prepared, so EXECUTE can inherit its verdict. */
  body?: StatementFacts;
}
