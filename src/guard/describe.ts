import type { StatementFacts, StatementKind } from './facts.js';

/**
 * Names a statement in refusals ("DROP TABLE", "COPY FROM"). The verb comes
 * from the kind the parser found; only the object type is read from the text,
 * and only when the text starts with that verb, so comments or casing cannot
 * make a message name something other than what was judged. Only ASCII
 * letters reach the message.
 */
const VERB: Record<StatementKind, string> = {
  select: 'SELECT',
  insert: 'INSERT',
  update: 'UPDATE',
  delete: 'DELETE',
  merge: 'MERGE',
  'ddl.create': 'CREATE',
  'ddl.alter': 'ALTER',
  'ddl.drop': 'DROP',
  truncate: 'TRUNCATE',
  'copy.in': 'COPY FROM',
  'copy.out': 'COPY TO',
  grant: 'GRANT',
  revoke: 'REVOKE',
  role: 'role change',
  set: 'SET',
  reset: 'RESET',
  show: 'SHOW',
  transaction: 'transaction control',
  explain: 'EXPLAIN',
  utility: 'utility statement',
  prepare: 'PREPARE',
  execute: 'EXECUTE',
  deallocate: 'DEALLOCATE',
  call: 'CALL',
  do: 'DO',
  other: 'statement',
};

const MODIFIERS = new Set(['OR', 'REPLACE', 'TEMP', 'TEMPORARY', 'UNLOGGED', 'UNIQUE', 'GLOBAL', 'LOCAL', 'RECURSIVE', 'TRUSTED', 'PROCEDURAL', 'CONSTRAINT']);
const OBJECTS = new Set([
  'TABLE', 'INDEX', 'VIEW', 'SCHEMA', 'FUNCTION', 'PROCEDURE', 'ROUTINE', 'SEQUENCE', 'TYPE', 'EXTENSION', 'TRIGGER', 'DATABASE',
  'ROLE', 'USER', 'GROUP', 'POLICY', 'RULE', 'DOMAIN', 'AGGREGATE', 'OPERATOR', 'COLLATION', 'CONVERSION', 'CAST', 'LANGUAGE',
  'PUBLICATION', 'SUBSCRIPTION', 'SERVER', 'STATISTICS', 'TABLESPACE', 'SYSTEM', 'OWNED',
]);
/** Object types of two words: the first word here, the second taken as written. */
const TWO_WORD_OBJECTS = new Set(['MATERIALIZED', 'FOREIGN', 'EVENT', 'TEXT', 'ACCESS', 'DEFAULT', 'LARGE']);
const TEXT_VERBS: Partial<Record<StatementKind, readonly string[]>> = {
  role: ['CREATE', 'ALTER', 'DROP'],
  transaction: ['BEGIN', 'START', 'COMMIT', 'END', 'ROLLBACK', 'ABORT', 'SAVEPOINT', 'RELEASE', 'PREPARE'],
  utility: ['VACUUM', 'ANALYZE', 'ANALYSE', 'CLUSTER', 'REINDEX', 'CHECKPOINT', 'LISTEN', 'UNLISTEN', 'NOTIFY', 'LOAD', 'DISCARD', 'LOCK', 'REFRESH', 'COMMENT', 'SECURITY', 'FETCH', 'MOVE', 'CLOSE', 'DECLARE'],
};

export function statementLabel(facts: StatementFacts): string {
  const kind = facts.kind;
  const verb = Object.hasOwn(VERB, kind) ? VERB[kind] : 'statement';
  const words = leadingWords(typeof facts.text === 'string' ? facts.text : '', 6);
  if (kind === 'ddl.create' || kind === 'ddl.alter' || kind === 'ddl.drop') {
    return words[0] === verb ? `${verb}${objectType(words.slice(1))}` : verb;
  }
  const textVerbs = Object.hasOwn(TEXT_VERBS, kind) ? TEXT_VERBS[kind] : undefined;
  if (textVerbs && words[0] !== undefined && textVerbs.includes(words[0])) {
    return kind === 'role' ? `${words[0]}${objectType(words.slice(1))}` : words[0];
  }
  return verb;
}

function objectType(rest: readonly string[]): string {
  const words = rest.filter((w, i) => !(MODIFIERS.has(w) && rest.slice(0, i).every((x) => MODIFIERS.has(x))));
  const first = words[0];
  if (first === undefined) return '';
  if (OBJECTS.has(first)) return ` ${first}`;
  if (TWO_WORD_OBJECTS.has(first) && words[1] !== undefined) return ` ${first} ${words[1]}`;
  return '';
}

/** The first few words of a statement, upper-cased, skipping comments (block comments nest, as in PostgreSQL). */
export function leadingWords(text: string, max: number): string[] {
  const words: string[] = [];
  let i = 0;
  const limit = Math.min(text.length, 4096);
  while (i < limit && words.length < max) {
    const c = text[i] as string;
    if (/\s/.test(c)) {
      i++;
    } else if (text.startsWith('--', i)) {
      const nl = text.indexOf('\n', i);
      i = nl < 0 ? limit : nl + 1;
    } else if (text.startsWith('/*', i)) {
      let depth = 0;
      while (i < limit) {
        if (text.startsWith('/*', i)) {
          depth++;
          i += 2;
        } else if (text.startsWith('*/', i)) {
          depth--;
          i += 2;
          if (depth === 0) break;
        } else i++;
      }
    } else {
      const m = /^[A-Za-z_]+/.exec(text.slice(i, i + 64));
      if (!m) break;
      words.push(m[0].toUpperCase());
      i += m[0].length;
    }
  }
  return words;
}
