import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { initSqlParser } from '../../src/sql/index.js';
import { redactPasswordLiterals, REDACTED_LITERAL } from '../../src/masking/statement-text.js';

describe('redactPasswordLiterals', () => {
  beforeAll(async () => {
    await initSqlParser();
  });

  it.each([
    ["ALTER ROLE app PASSWORD 'hunter2'", `ALTER ROLE app PASSWORD ${REDACTED_LITERAL}`],
    ["create user ci with login password 'it''s secret' valid until 'infinity'", `create user ci with login password ${REDACTED_LITERAL} valid until 'infinity'`],
    ["ALTER USER app WITH PASSWORD E'a\\'b' LOGIN", `ALTER USER app WITH PASSWORD ${REDACTED_LITERAL} LOGIN`],
    ['ALTER ROLE app PASSWORD $$dollar secret$$', `ALTER ROLE app PASSWORD ${REDACTED_LITERAL}`],
    ['ALTER ROLE app PASSWORD $pw$x$y$pw$ LOGIN', `ALTER ROLE app PASSWORD ${REDACTED_LITERAL} LOGIN`],
    ["CREATE USER MAPPING FOR app SERVER s OPTIONS (user 'u', password 'p@ss')", `CREATE USER MAPPING FOR app SERVER s OPTIONS (user 'u', password ${REDACTED_LITERAL})`],
    ["ALTER ROLE \"rôle\" PASSWORD 'pässword' LOGIN", `ALTER ROLE "rôle" PASSWORD ${REDACTED_LITERAL} LOGIN`],
    ["ALTER ROLE app PASSWORD 'unterminated", `ALTER ROLE app PASSWORD ${REDACTED_LITERAL}`],
    ["ALTER ROLE a PASSWORD 'x'; ALTER ROLE b PASSWORD 'y'", `ALTER ROLE a PASSWORD ${REDACTED_LITERAL}; ALTER ROLE b PASSWORD ${REDACTED_LITERAL}`],
  ])('%s', (text, expected) => {
    expect(redactPasswordLiterals(text)).toBe(expected);
  });

  it('leaves other statements and PASSWORD NULL alone', () => {
    for (const text of ['select password from users', 'ALTER ROLE app PASSWORD NULL', "select 'password'", "select 'my password' || 'x'", 'select "password" from t -- password \'x\'', 'select 1']) {
      expect(redactPasswordLiterals(text)).toBe(text);
    }
  });

  it('never leaves the literal behind, whatever it holds (property)', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 30 }).filter((s) => /^[\w@#!%^&*() -]+$/.test(s)), fc.constantFrom('plain', 'dollar', 'escaped'), (secret, quoting) => {
        const literal = quoting === 'plain' ? `'${secret}'` : quoting === 'dollar' ? `$q$${secret}$q$` : `E'${secret}'`;
        const out = redactPasswordLiterals(`ALTER ROLE app WITH LOGIN PASSWORD ${literal} VALID UNTIL 'infinity'`);
        expect(out).toBe(`ALTER ROLE app WITH LOGIN PASSWORD ${REDACTED_LITERAL} VALID UNTIL 'infinity'`);
      }),
    );
  });
});
