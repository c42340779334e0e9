/**
 * Name patterns of statement rules. Matching is case-insensitive and reads
 * through double quotes: PostgreSQL folds unquoted names to lower case, and a
 * deny rule on public.users should also stop "Users" or "public"."users".
 * Over-matching only denies more, which is the safe side for a deny rule.
 */

/** Splits a possibly qualified name into lower-cased segments, dropping double quotes. */
export function nameSegments(name: string): string[] {
  return String(name).replace(/"/g, '').toLowerCase().split('.');
}

/** `*` matches any run of characters within one segment. */
export function globSegment(pattern: string, value: string): boolean {
  if (pattern === '*') return true;
  if (!pattern.includes('*')) return pattern === value;
  const parts = pattern.split('*');
  const first = parts[0] as string;
  const last = parts[parts.length - 1] as string;
  if (value.length < first.length + last.length || !value.startsWith(first) || !value.endsWith(last)) return false;
  let at = first.length;
  const end = value.length - last.length;
  for (const part of parts.slice(1, -1)) {
    const found = value.indexOf(part, at);
    if (found < 0 || found + part.length > end) return false;
    at = found + part.length;
  }
  return true;
}

/**
 * `schema.table` pattern against a table fact. A fact without a schema
 * could resolve to any schema on the search_path, so only its table part
 * has to match; a fact with more segments (database.schema.table) is
 * judged by its last two.
 */
export function tableMatches(pattern: string, table: string): boolean {
  const [ps, pt] = nameSegments(pattern) as [string, string];
  const segs = nameSegments(table);
  const t = segs[segs.length - 1] as string;
  if (!globSegment(pt, t)) return false;
  if (segs.length < 2) return true;
  return globSegment(ps, segs[segs.length - 2] as string);
}

/** The function's own name, without schema, lower-cased. */
export function functionName(fn: string): string {
  const segs = nameSegments(fn);
  return segs[segs.length - 1] as string;
}

/**
 * `name`, `name*`, `schema.name` or `*` against a function fact. An
 * unqualified pattern matches the name in any schema (pg_catalog.pg_read_file
 * is pg_read_file); a qualified pattern also matches an unqualified call,
 * which the search_path may resolve to it.
 */
export function functionMatches(pattern: string, fn: string): boolean {
  const p = nameSegments(pattern);
  const f = nameSegments(fn);
  const pName = p[p.length - 1] as string;
  const fName = f[f.length - 1] as string;
  const nameOk = pName.endsWith('*') ? fName.startsWith(pName.slice(0, -1)) : pName === fName;
  if (!nameOk) return false;
  if (p.length < 2 || f.length < 2) return true;
  return p[p.length - 2] === f[f.length - 2];
}
