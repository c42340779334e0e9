import { afterEach, describe, expect, it } from 'vitest';
import type { PrincipalMatch } from '../../src/config/schema.js';
import type { Principal } from '../../src/identity/principal.js';
import { matchesPrincipal } from '../../src/policy/index.js';
import { IDP, principal } from './fixtures.js';

const alice = principal({
  subject: 'alice',
  groups: ['dba', 'eng'],
  claims: {
    sub: 'alice',
    email_verified: true,
    level: 3,
    dept: 'sales',
    roles: ['admin', 'ops'],
    ids: [1, 2],
    org: { id: 'x' },
    nested: [['a']],
    n_str: '1',
    b_str: 'true',
    empty: '',
    zero: 0,
    no: false,
  },
});

function withGroups(...groups: string[]): Principal {
  return principal({ groups });
}

function withSubject(subject: string): Principal {
  return principal({ subject });
}

function withClaims(json: string): Principal {
  return principal({ claims: JSON.parse(json) as Record<string, unknown> });
}

/** JSON.parse keeps `__proto__` as an own key, as a token's claims or a parsed policy would. */
function claimsWhen(json: string): PrincipalMatch {
  return { claims: JSON.parse(json) as Record<string, string | number | boolean> };
}

describe('matchesPrincipal: empty and fail-closed', () => {
  it.each<[string, PrincipalMatch]>([
    ['no fields at all', {}],
    ['an empty claims object', { claims: {} }],
    ['an empty subjects list', { subjects: [] }],
    ['an empty groups list', { groups: [] }],
    ['an empty groups list next to a matching issuer', { issuer: IDP, groups: [] }],
    ['an empty subjects list next to a matching kind', { kind: 'person', subjects: [] }],
  ])('%s matches nothing', (_label, when) => {
    expect(matchesPrincipal(when, alice)).toBe(false);
  });

  it('fields that are present but undefined count as absent', () => {
    expect(matchesPrincipal({ issuer: undefined, subjects: undefined }, alice)).toBe(false);
  });
});

describe('matchesPrincipal: issuer, kind, subjects', () => {
  it.each<[string, PrincipalMatch, Principal, boolean]>([
    ['exact issuer', { issuer: IDP }, alice, true],
    ['issuer with a trailing slash', { issuer: `${IDP}/` }, alice, false],
    ['issuer in another case', { issuer: IDP.toUpperCase() }, alice, false],
    ['issuer as a prefix', { issuer: 'https://idp.example' }, alice, false],
    ['principal issuer extends the policy issuer', { issuer: IDP }, principal({ issuer: `${IDP}.evil.test` }), false],
    ['kind person', { kind: 'person' }, alice, true],
    ['kind machine for a person', { kind: 'machine' }, alice, false],
    ['subject listed', { subjects: ['alice'] }, alice, true],
    ['subject among several (any)', { subjects: ['bob', 'alice', 'carol'] }, alice, true],
    ['subject in another case', { subjects: ['Alice'] }, alice, false],
    ['subject with a leading space', { subjects: [' alice'] }, alice, false],
    ['subject with a trailing space', { subjects: ['alice '] }, alice, false],
    ['subject with a trailing newline', { subjects: ['alice\n'] }, alice, false],
    ['policy subject as a prefix of the principal', { subjects: ['ali'] }, alice, false],
    ['principal subject extends the policy subject', { subjects: ['alice'] }, withSubject('alice-evil'), false],
    ['principal subject is a prefix of the policy subject', { subjects: ['alice2'] }, alice, false],
    ['principal subject padded with whitespace', { subjects: ['alice'] }, withSubject(' alice '), false],
    ['principal subject with a NUL', { subjects: ['alice'] }, withSubject('alice\u0000'), false],
    ['Cyrillic a in the principal subject', { subjects: ['alice'] }, withSubject('\u0430lice'), false],
    ['empty principal subject against an empty policy entry', { subjects: [''] }, withSubject(''), true],
    ['empty principal subject against a named entry', { subjects: ['alice'] }, withSubject(''), false],
  ])('%s', (_label, when, p, expected) => {
    expect(matchesPrincipal(when, p)).toBe(expected);
  });
});

describe('matchesPrincipal: groups', () => {
  it.each<[string, readonly string[], readonly string[], boolean]>([
    ['listed group', ['dba'], ['dba'], true],
    ['any of several', ['ops', 'eng'], ['dba', 'eng'], true],
    ['upper case policy group', ['DBA'], ['dba'], false],
    ['upper case principal group', ['dba'], ['DBA'], false],
    ['principal group with a suffix', ['dba'], ['dba-evil'], false],
    ['principal group plural', ['dba'], ['dbas'], false],
    ['principal group with a prefix', ['dba'], ['xdba'], false],
    ['principal group with a leading space', ['dba'], [' dba'], false],
    ['principal group with a trailing tab', ['dba'], ['dba\t'], false],
    ['policy group longer than the principal group', ['dba-evil'], ['dba'], false],
    ['policy group shorter than the principal group', ['db'], ['dba'], false],
    ['issuer-prefixed principal group against a bare name', ['dba'], ['corp:dba'], false],
    ['bare principal group against an issuer-prefixed name', ['corp:dba'], ['dba'], false],
    ['prefixed group exact', ['corp:dba'], ['corp:dba'], true],
    ['Cyrillic a lookalike', ['dba'], ['db\u0430'], false],
    ['composed vs decomposed accent', ['caf\u00e9'], ['cafe\u0301'], false],
    ['no groups at all', ['dba'], [], false],
    ['comma-joined groups are one group', ['dba'], ['dba,eng'], false],
  ])('%s', (_label, policyGroups, principalGroups, expected) => {
    expect(matchesPrincipal({ groups: [...policyGroups] }, withGroups(...principalGroups))).toBe(expected);
  });
});

describe('matchesPrincipal: claims', () => {
  it.each<[string, Record<string, string | number | boolean>, boolean]>([
    ['string equal', { dept: 'sales' }, true],
    ['string in another case', { dept: 'Sales' }, false],
    ['string with a trailing space', { dept: 'sales ' }, false],
    ['number equal', { level: 3 }, true],
    ['number asked as a string', { level: '3' }, false],
    ['string "1" asked as number 1', { n_str: 1 }, false],
    ['boolean equal', { email_verified: true }, true],
    ['boolean asked as a string', { email_verified: 'true' }, false],
    ['string "true" asked as boolean', { b_str: true }, false],
    ['0 asked as false', { zero: false }, false],
    ['false asked as 0', { no: 0 }, false],
    ['empty string asked as false', { empty: false }, false],
    ['empty string equal', { empty: '' }, true],
    ['absent claim asked as false', { missing: false }, false],
    ['absent claim asked as empty string', { missing: '' }, false],
    ['array containing the value', { roles: 'admin' }, true],
    ['array containing the value (second entry)', { roles: 'ops' }, true],
    ['array element prefix', { roles: 'adm' }, false],
    ['array joined by comma', { roles: 'admin,ops' }, false],
    ['numeric array containing the number', { ids: 1 }, true],
    ['numeric array asked as a string', { ids: '1' }, false],
    ['nested object against a scalar', { org: 'x' }, false],
    ['nested object against its string form', { org: '[object Object]' }, false],
    ['nested array against its inner value', { nested: 'a' }, false],
    ['several claims all equal', { dept: 'sales', level: 3, email_verified: true }, true],
    ['several claims with one different', { dept: 'sales', level: 4 }, false],
  ])('%s', (_label, claims, expected) => {
    expect(matchesPrincipal({ claims }, alice)).toBe(expected);
  });
});

describe('matchesPrincipal: prototype names in claims', () => {
  const polluted = 'sluicePolicyTestPolluted';

  afterEach(() => {
    delete (Object.prototype as Record<string, unknown>)[polluted];
  });

  it.each<[string, PrincipalMatch, Principal, boolean]>([
    ['own __proto__ claim equal', claimsWhen('{"__proto__":"x"}'), withClaims('{"__proto__":"x"}'), true],
    ['__proto__ asked, token has none', claimsWhen('{"__proto__":"x"}'), withClaims('{}'), false],
    ['constructor asked, token has none', claimsWhen('{"constructor":"Object"}'), withClaims('{}'), false],
    ['constructor asked as a function name string', claimsWhen('{"constructor":"function Object() { [native code] }"}'), withClaims('{}'), false],
    ['toString asked, token has none', claimsWhen('{"toString":"x"}'), withClaims('{}'), false],
    ['hasOwnProperty is an ordinary claim', claimsWhen('{"hasOwnProperty":"x"}'), withClaims('{"hasOwnProperty":"x"}'), true],
    ['own constructor claim equal', claimsWhen('{"constructor":"y"}'), withClaims('{"constructor":"y"}'), true],
    ['claims hidden inside a __proto__ object', { claims: { admin: true } }, withClaims('{"__proto__":{"admin":true}}'), false],
    ['claims object with a null prototype', { claims: { dept: 'sales' } }, principal({ claims: Object.assign(Object.create(null) as object, { dept: 'sales' }) }), true],
  ])('%s', (_label, when, p, expected) => {
    expect(matchesPrincipal(when, p)).toBe(expected);
  });

  it('ignores claims inherited from a polluted Object.prototype', () => {
    (Object.prototype as Record<string, unknown>)[polluted] = true;
    expect(({} as Record<string, unknown>)[polluted]).toBe(true);
    expect(matchesPrincipal({ claims: { [polluted]: true } }, principal({ claims: {} }))).toBe(false);
  });

  it('never runs a claim getter', () => {
    let ran = false;
    const claims = {};
    Object.defineProperty(claims, 'dept', {
      enumerable: true,
      get() {
        ran = true;
        throw new Error('getter ran');
      },
    });
    expect(matchesPrincipal({ claims: { dept: 'sales' } }, principal({ claims }))).toBe(false);
    expect(ran).toBe(false);
  });
});

describe('matchesPrincipal: all given fields must match', () => {
  it.each<[string, PrincipalMatch, boolean]>([
    ['issuer, subject, group, kind and claim all match', { issuer: IDP, subjects: ['alice'], groups: ['dba'], kind: 'person', claims: { dept: 'sales' } }, true],
    ['subject matches, group does not', { subjects: ['alice'], groups: ['ops'] }, false],
    ['group matches, issuer does not', { issuer: 'https://other.example.com', groups: ['dba'] }, false],
    ['group matches, kind does not', { groups: ['dba'], kind: 'machine' }, false],
    ['group matches, claim does not', { groups: ['dba'], claims: { dept: 'hr' } }, false],
    ['group matches, claims empty (no constraint)', { groups: ['dba'], claims: {} }, true],
    ['subject matches, groups empty', { subjects: ['alice'], groups: [] }, false],
  ])('%s', (_label, when, expected) => {
    expect(matchesPrincipal(when, alice)).toBe(expected);
  });
});
