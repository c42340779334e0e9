/**
 * Setting names as PostgreSQL looks them up: case-insensitively. Spaces are
 * folded to underscores and NAMES to client_encoding so that every spelling
 * of a refused setting compares equal to it; a fold that is too eager only
 * refuses more.
 */
export function normalizeSetting(name: string): string {
  const n = String(name).trim().toLowerCase().replace(/\s+/g, '_');
  return n === 'names' ? 'client_encoding' : n;
}

/**
 * Settings no grant may change unless an allow rule names them: role and
 * session_authorization change who the backend thinks is acting,
 * search_path changes which objects unqualified names (and so the guard's
 * table facts) resolve to, and client_encoding changes how the relay must
 * read the wire.
 */
export const REFUSED_SETTINGS: readonly string[] = ['role', 'session_authorization', 'search_path', 'client_encoding'];

export function isRefusedSetting(name: string): boolean {
  return REFUSED_SETTINGS.includes(normalizeSetting(name));
}
