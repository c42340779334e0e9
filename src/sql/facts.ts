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
  | 'whole_row';

export interface ColumnUse {
  /** The table the column belongs to when the text says so (alias resolved), or the only table in scope. */
  table?: string;
  /** `*` for a star or a whole-row reference. */
  column: string;
  clause: ColumnClause;
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
  /** PREPARE/EXECUTE/DEALLOCATE: the prepared statement's name. */
  preparedName?: string;
  /** PREPARE: the facts of the statement being prepared, so EXECUTE can inherit its verdict. */
  body?: StatementFacts;
}
