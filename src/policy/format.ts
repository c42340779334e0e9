/**
 * Names in decision messages. Resource and grant names arrive from the client
 * (startup packet, URL), and subjects and groups from the token, so anything
 * that is not a plain identifier is quoted, escaped and cut short: a message
 * must not carry line breaks or control characters into logs and terminals.
 */
const PLAIN = /^[A-Za-z0-9][A-Za-z0-9_.@:/+-]{0,127}$/;
const MAX_SHOWN = 128;
const MAX_GROUPS_SHOWN = 10;

export function showName(value: unknown): string {
  if (typeof value !== 'string') return '(not a name)';
  if (PLAIN.test(value)) return value;
  return quote(value.length > MAX_SHOWN ? `${value.slice(0, MAX_SHOWN)}…` : value);
}

export function showPolicy(name: string): string {
  return quote(name);
}

export function showPolicies(names: readonly string[]): string {
  const unique = [...new Set(names)].sort(byCodeUnits);
  return `${unique.length === 1 ? 'policy' : 'policies'} ${unique.map(quote).join(', ')}`;
}

/** Subject and group names only: other claim values never appear in messages. */
export function showPrincipal(subject: unknown, groups: unknown): string {
  const list = Array.isArray(groups) ? groups : [];
  const who = `subject ${showName(subject)}`;
  if (list.length === 0) return `${who} (no groups)`;
  const shown = list.slice(0, MAX_GROUPS_SHOWN).map(showName).join(', ');
  const more = list.length > MAX_GROUPS_SHOWN ? ` and ${list.length - MAX_GROUPS_SHOWN} more` : '';
  return `${who} (groups: ${shown}${more})`;
}

export function byCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function quote(text: string): string {
  return JSON.stringify(text).replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}

/**
 * Text others wrote (statement text, reasons, justifications) made safe for
 * a terminal: control characters, which could move the cursor or recolour
 * what an approver reads, and bidirectional overrides, which could reorder
 * it, are shown as \uXXXX escapes. Line breaks and tabs stay.
 */
export function printable(text: string): string {
  return text.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
