import { globSegment, nameSegments } from '../guard/patterns.js';

/**
 * A `schema.table.column` pattern against a catalog column. Names compare
 * case-insensitively and `*` matches within one name, like the guard's table
 * patterns: matching more only masks more.
 */
export function columnMatches(pattern: string, schema: string, table: string, column: string): boolean {
  const [ps, pt, pc] = nameSegments(pattern) as [string, string, string];
  return globSegment(pc, column.toLowerCase()) && globSegment(pt, table.toLowerCase()) && globSegment(ps, schema.toLowerCase());
}
