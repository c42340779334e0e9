import { nameSegments } from '../guard/patterns.js';

/** `*` matches any run of characters within one name. */
function glob(pattern: string, value: string): boolean {
  if (pattern === '*') return true;
  if (!pattern.includes('*')) return pattern === value;
  const re = new RegExp(`^${pattern.split('*').map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`, 's');
  return re.test(value);
}

/**
 * A `schema.table.column` pattern against a catalog column. Names compare
 * case-insensitively, like the guard's table patterns: matching more only
 * masks more.
 */
export function columnMatches(pattern: string, schema: string, table: string, column: string): boolean {
  const [ps, pt, pc] = nameSegments(pattern) as [string, string, string];
  return glob(pc, column.toLowerCase()) && glob(pt, table.toLowerCase()) && glob(ps, schema.toLowerCase());
}
