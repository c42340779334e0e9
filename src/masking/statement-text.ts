/**
 * Statement text as the audit log records it. Clients send credentials in
 * statements (`ALTER ROLE app PASSWORD '...'`, `CREATE USER MAPPING ...
 * OPTIONS (password '...')`); the literal after a PASSWORD keyword is
 * replaced, whatever its quoting, so no credential reaches the log. The
 * text is scanned token by token, so "password" inside a string, a quoted
 * identifier or a comment is not a keyword. Pure.
 */
export const REDACTED_LITERAL = "'[redacted]'";

export function redactPasswordLiterals(text: string): string {
  if (!/password/i.test(text)) return text;
  let out = '';
  let copied = 0;
  let i = 0;
  while (i < text.length) {
    const skip = skipNonCode(text, i);
    if (skip !== i) {
      i = skip;
      continue;
    }
    const word = /^[A-Za-z_][A-Za-z0-9_$]*/.exec(text.slice(i, i + 64));
    if (!word) {
      i++;
      continue;
    }
    i += word[0].length;
    if (word[0].toLowerCase() !== 'password') continue;
    let j = i;
    while (j < text.length && /[\s=]/.test(text[j]!)) j++;
    const end = literalEnd(text, j);
    if (end === undefined) continue;
    out += text.slice(copied, j) + REDACTED_LITERAL;
    copied = end;
    i = end;
  }
  return copied === 0 ? text : out + text.slice(copied);
}

/** Past a string literal, quoted identifier or comment starting at `i`; `i` itself when none does. */
function skipNonCode(text: string, i: number): number {
  const c = text[i];
  if (c === '-' && text[i + 1] === '-') {
    const nl = text.indexOf('\n', i);
    return nl < 0 ? text.length : nl + 1;
  }
  if (c === '/' && text[i + 1] === '*') {
    const close = text.indexOf('*/', i + 2);
    return close < 0 ? text.length : close + 2;
  }
  if (c === '"') {
    for (let k = i + 1; k < text.length; k++) {
      if (text[k] === '"') {
        if (text[k + 1] === '"') k++;
        else return k + 1;
      }
    }
    return text.length;
  }
  return literalEnd(text, i) ?? i;
}

/**
 * Where the string literal starting at `i` ends, or undefined when none
 * starts there. An unterminated literal runs to the end of the text, so it
 * is redacted whole.
 */
function literalEnd(text: string, i: number): number | undefined {
  let j = i;
  if (text.slice(j, j + 2).toLowerCase() === 'u&') j += 2;
  const escaped = (text[j] === 'e' || text[j] === 'E') && text[j + 1] === "'";
  if (escaped) j++;
  if (text[j] === "'") {
    for (let k = j + 1; k < text.length; k++) {
      if (escaped && text[k] === '\\') {
        k++;
        continue;
      }
      if (text[k] === "'") {
        if (text[k + 1] === "'") {
          k++;
          continue;
        }
        return k + 1;
      }
    }
    return text.length;
  }
  if (j !== i) return undefined;
  const dollar = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(text.slice(j, j + 64));
  if (dollar) {
    const close = text.indexOf(dollar[0], j + dollar[0].length);
    return close < 0 ? text.length : close + dollar[0].length;
  }
  return undefined;
}
