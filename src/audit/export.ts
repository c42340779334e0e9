import type { AuditEvent } from '../events/types.js';
import { canonicalJson } from './hash-chain.js';

/** The CSV columns, in order; `data` holds whatever the named columns did not take. */
export const CSV_COLUMNS = [
  'seq',
  'chain',
  'time',
  'type',
  'session_id',
  'issuer',
  'subject',
  'kind',
  'resource',
  'statement',
  'rule',
  'sqlstate',
  'rows',
  'request_id',
  'data',
] as const;

/** Header line of an export; rows end in CRLF as RFC 4180 says. */
export const CSV_HEADER = CSV_COLUMNS.join(',') + '\r\n';

/** Data keys lifted into their own column (statement → data.text, request_id → data.id). */
const DATA_COLUMNS = [
  ['text', 'statement'],
  ['rule', 'rule'],
  ['sqlstate', 'sqlstate'],
  ['rows', 'rows'],
  ['id', 'request_id'],
] as const;

/**
 * One event as one JSON line, newline included. JSON.stringify already
 * escapes CR, LF and every other C0 control character; U+2028/U+2029 are
 * escaped too because JavaScript tooling and some log shippers split lines on
 * them.
 */
export function toJsonLine(event: AuditEvent): string {
  return JSON.stringify(event).replace(/[\u2028\u2029]/g, (c) => unicodeEscape(c)) + '\n';
}

/**
 * One event as one RFC 4180 row, CRLF included. Every field is quoted with
 * inner quotes doubled, so commas and line breaks inside a value stay inside
 * its cell; control characters other than tab and newline become \uXXXX, so
 * a CR never appears except as the row terminator; and a cell a spreadsheet
 * would take for a formula gets a leading apostrophe (OWASP CSV injection).
 * The CSV is for reading; JSON Lines is the lossless format.
 */
export function toCsvRow(event: AuditEvent): string {
  const rest: Record<string, unknown> = { ...event.data };
  const lifted: Record<string, string> = {};
  for (const [key, column] of DATA_COLUMNS) {
    const v = rest[key];
    // Only scalars a cell shows unambiguously move out of `data`; anything else stays there, so nothing is lost.
    if (typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v))) {
      lifted[column] = String(v);
      delete rest[key];
    }
  }
  const cells: Record<(typeof CSV_COLUMNS)[number], string> = {
    seq: String(event.seq),
    chain: event.chain,
    time: event.time,
    type: event.type,
    session_id: event.sessionId ?? '',
    issuer: event.principal?.issuer ?? '',
    subject: event.principal?.subject ?? '',
    kind: event.principal?.kind ?? '',
    resource: event.resource ?? '',
    statement: lifted.statement ?? '',
    rule: lifted.rule ?? '',
    sqlstate: lifted.sqlstate ?? '',
    rows: lifted.rows ?? '',
    request_id: lifted.request_id ?? '',
    data: Object.keys(rest).length ? canonicalJson(rest) : '',
  };
  return CSV_COLUMNS.map((c) => csvCell(cells[c])).join(',') + '\r\n';
}

/**
 * C0 controls but tab and LF, DEL, C1 controls (NEL among them), the Unicode
 * line and paragraph separators, bidirectional overrides and isolates (which
 * can make one cell look like another), and lone surrogates (not encodable
 * as UTF-8).
 */
const UNSAFE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/**
 * Leading characters spreadsheets read as a formula: ASCII, full-width and
 * small-form variants. A leading CR is on OWASP's list too; UNSAFE has
 * already turned it into text.
 */
const FORMULA_START = /^[=+\-@\t\uff1d\uff0b\uff0d\uff20\ufe62\ufe63\ufe66\ufe6b]/;

function csvCell(value: string): string {
  let v = value.replace(UNSAFE, unicodeEscape);
  if (FORMULA_START.test(v)) v = "'" + v;
  return '"' + v.replace(/"/g, '""') + '"';
}

function unicodeEscape(c: string): string {
  return '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0');
}
