import { scanRaw } from '../sql/parser.js';
import { maskDetected, type DetectorName } from './detectors.js';
import type { StrategySpec } from './strategies.js';

/**
 * Statement text as the audit log records it. Clients send credentials in
 * statements (`ALTER ROLE app PASSWORD '...'`, `CREATE USER MAPPING ...
 * OPTIONS (password '...')`); the string constant after a PASSWORD keyword is
 * replaced, whatever its quoting. PostgreSQL's own scanner finds the tokens,
 * so "password" inside a string, a quoted identifier or a comment is not a
 * keyword. Needs the SQL parser loaded (the relay classifies first).
 */
export const REDACTED_LITERAL = "'[redacted]'";

export function redactPasswordLiterals(text: string): string {
  if (!/password/i.test(text)) return text;
  let tokens: ReturnType<typeof scanRaw>;
  try {
    tokens = scanRaw(text);
  } catch {
    // Text the scanner rejects (an unterminated literal) may hold a credential anywhere after the keyword.
    return text.replace(/(password)[\s\S]*$/i, `$1 ${REDACTED_LITERAL}`);
  }
  // Token offsets count UTF-8 bytes.
  const bytes = Buffer.from(text, 'utf8');
  const parts: string[] = [];
  let copied = 0;
  for (let i = 0; i + 1 < tokens.length; i++) {
    if (tokens[i]!.text.toLowerCase() !== 'password') continue;
    const next = tokens[i + 1]!.text === '=' ? tokens[i + 2] : tokens[i + 1];
    if (next?.tokenName !== 'SCONST' && next?.tokenName !== 'USCONST') continue;
    parts.push(bytes.toString('utf8', copied, next.start), REDACTED_LITERAL);
    copied = next.end;
  }
  return copied === 0 ? text : parts.join('') + bytes.toString('utf8', copied);
}

/** Credentials that look like what they are, wherever they stand in a statement or parameter. */
const CREDENTIAL_DETECTORS: ReadonlySet<DetectorName> = new Set(['jwt', 'private_key']);
const REDACT: StrategySpec = { strategy: 'redact' };
/** The redact strategy never hashes; the key is only there to satisfy the signature. */
const NO_KEY = Buffer.alloc(0);

/**
 * Statement text or a parameter as every audit record keeps it, masked or
 * not: password literals redacted, and anything shaped like a token (a JWT,
 * as clients paste identity tokens) or a PEM private key replaced by
 * `[masked:jwt]` / `[masked:private_key]`. Tokens must never reach the log.
 */
export function redactCredentials(text: string, opts: { sql: boolean }): string {
  const base = opts.sql ? redactPasswordLiterals(text) : text;
  return maskDetected(base, CREDENTIAL_DETECTORS, REDACT, NO_KEY) ?? REDACTED_LITERAL;
}
