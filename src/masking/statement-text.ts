import { scanRaw } from '../sql/parser.js';

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
