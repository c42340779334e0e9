import { SqlError } from 'libpg-query';
import type { StatementFacts } from './facts.js';
import { SHORT_TEXT_CHARS, WASM_SAFE_ESTIMATE, estimateDepth, treeDepth } from './depth.js';
import { extractStatement } from './extract.js';
import { assertParserReady, parseRaw, scanRaw } from './parser.js';

export { initSqlParser } from './parser.js';

export type Classification =
  | { ok: true; statements: StatementFacts[] }
  | { ok: false; reason: 'unparseable' | 'too_large' | 'too_deep'; message: string };

export interface ClassifyLimits {
  /** Largest statement text in UTF-8 bytes; default 1 MiB. */
  maxBytes?: number;
  /** Deepest parse tree accepted, in JSON nesting levels; default 1000, capped at 3000 so the walk stays on the stack. */
  maxDepth?: number;
}

export const DEFAULT_MAX_BYTES = 1024 * 1024;
export const DEFAULT_MAX_DEPTH = 1000;
const MAX_DEPTH_CEILING = 3000;

let poisoned = false;

/**
 * Parses `sql` with the PostgreSQL grammar and returns the facts of each
 * statement, or why it cannot be judged. Never throws for any input once
 * initSqlParser() has resolved.
 */
export function classify(sql: string, limits: ClassifyLimits = {}): Classification {
  assertParserReady();
  const maxBytes = limits.maxBytes ?? DEFAULT_MAX_BYTES;
  const maxDepth = Math.min(limits.maxDepth ?? DEFAULT_MAX_DEPTH, MAX_DEPTH_CEILING);
  if (poisoned) return { ok: false, reason: 'unparseable', message: 'the SQL parser failed earlier in this process; restart Sluice' };
  if (typeof sql !== 'string') return { ok: false, reason: 'unparseable', message: 'statement text is not a string' };
  const bytes = Buffer.byteLength(sql, 'utf8');
  if (bytes > maxBytes) return { ok: false, reason: 'too_large', message: `statement is ${bytes} bytes, over the limit of ${maxBytes}` };
  if (sql.includes('\u0000')) return { ok: false, reason: 'unparseable', message: 'statement text contains a NUL character' };
  if (sql.trim() === '') return { ok: true, statements: [] };

  let tree: { stmts?: Array<{ stmt?: Record<string, unknown>; stmt_location?: number; stmt_len?: number }> };
  try {
    if (sql.length > SHORT_TEXT_CHARS) {
      const estimate = estimateDepth(scanRaw(sql));
      if (estimate > WASM_SAFE_ESTIMATE) return tooDeep(`statement nests too deeply to parse safely (estimated ${estimate} levels)`);
    }
    tree = parseRaw(sql);
  } catch (err) {
    if (err instanceof SqlError) return { ok: false, reason: 'unparseable', message: err.message };
    if (err instanceof RangeError) poisoned = true;
    return { ok: false, reason: 'unparseable', message: 'the SQL parser could not read this statement' };
  }
  const depth = treeDepth(tree, maxDepth);
  if (depth > maxDepth) return tooDeep(`statement nests deeper than ${maxDepth} levels`);

  const slicer = textSlicer(sql);
  const statements: StatementFacts[] = [];
  for (const raw of tree.stmts ?? []) {
    if (!raw.stmt) continue;
    const text = slicer(raw.stmt_location ?? 0, raw.stmt_len ?? 0);
    const facts = extractStatement(raw.stmt);
    statements.push({ ...facts, text, ...(facts.body ? { body: { ...facts.body, text } } : {}) });
  }
  return { ok: true, statements };
}

function tooDeep(message: string): Classification {
  return { ok: false, reason: 'too_deep', message };
}

/** Parser locations are UTF-8 byte offsets; a length of 0 means "to the end". */
function textSlicer(sql: string): (location: number, length: number) => string {
  if (/^[\x00-\x7f]*$/.test(sql)) return (loc, len) => sql.slice(loc, len > 0 ? loc + len : undefined).trim();
  const buf = Buffer.from(sql, 'utf8');
  return (loc, len) => buf.subarray(loc, len > 0 ? loc + len : undefined).toString('utf8').trim();
}
