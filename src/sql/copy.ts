import type { CopyFacts } from './facts.js';

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);
const asArray = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

const FORMATS = new Set<CopyFacts['format']>(['text', 'csv', 'binary']);
const TRUE_WORDS = new Set(['true', 'on', 'yes', '1', 'match']);
const FALSE_WORDS = new Set(['false', 'off', 'no', '0']);

/** A DefElem argument as text; the parser omits zero and false values, so `{ Integer: {} }` is 0. */
function argText(arg: unknown): string | undefined {
  if (!isObj(arg)) return undefined;
  if (isObj(arg.String)) return String(arg.String.sval ?? '');
  if (isObj(arg.Integer)) return String(arg.Integer.ival ?? 0);
  if (isObj(arg.Boolean)) return arg.Boolean.boolval ? 'true' : 'false';
  return undefined;
}

/** A boolean option; a bare option name (no argument) means true, as in PostgreSQL. */
function argBool(arg: unknown): boolean | undefined {
  if (arg === undefined) return true;
  const text = argText(arg)?.toLowerCase();
  if (text === undefined) return undefined;
  if (TRUE_WORDS.has(text)) return true;
  if (FALSE_WORDS.has(text)) return false;
  return undefined;
}

/**
 * Direction and data format of a CopyStmt. The parser folds the legacy
 * spellings (`CSV`, `BINARY`, `DELIMITER AS`, `NULL AS`, `HEADER`) into the same
 * DefElem options as `WITH (FORMAT csv, ...)`, so one reading covers both.
 */
export function copyFacts(node: Obj): CopyFacts {
  const facts: CopyFacts = { direction: node.is_from ? 'in' : 'out', format: 'text', query: isObj(node.query) };
  const columns = asArray(node.attlist).flatMap((c) => (isObj(c) && isObj(c.String) ? [String(c.String.sval ?? '')] : []));
  if (columns.length > 0) facts.columns = columns;
  for (const item of asArray(node.options)) {
    const d = isObj(item) && isObj(item.DefElem) ? item.DefElem : undefined;
    if (!d) continue;
    const name = String(d.defname ?? '');
    if (name === 'format') {
      const format = argText(d.arg)?.toLowerCase();
      if (format && FORMATS.has(format as CopyFacts['format'])) facts.format = format as CopyFacts['format'];
    } else if (name === 'delimiter' || name === 'quote' || name === 'escape' || name === 'null') {
      const value = argText(d.arg);
      if (value !== undefined) facts[name] = value;
    } else if (name === 'header') {
      const header = argBool(d.arg);
      if (header !== undefined) facts.header = header;
    }
  }
  return facts;
}
