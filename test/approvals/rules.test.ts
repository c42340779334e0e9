import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { accessStillAllowed, holdFor, mayDecide, statementHash } from '../../src/approvals/rules.js';
import { printable } from '../../src/policy/format.js';
import { foldStatus, type ApprovalEventRow } from '../../src/approvals/state.js';
import type { ApprovalRequest } from '../../src/approvals/types.js';
import { validateConfig } from '../../src/config/load.js';
import { StatementTracker } from '../../src/protocols/postgres/statement-tracker.js';
import { facts, IDP, policies, principal } from '../guard/fixtures.js';

const approvers = [{ groups: ['dba'] }];
const KEY = Buffer.alloc(32, 7);
const T0 = Date.parse('2026-11-22T10:00:00Z');
const at = (s: number) => new Date(T0 + s * 1000).toISOString();

function request(over: Partial<ApprovalRequest> = {}): ApprovalRequest {
  return {
    id: 'apr_aaaaaaaaaaaaaaaaaaaa',
    kind: 'statement',
    rule: 'hold',
    requester: { issuer: IDP, subject: 'alice', kind: 'person', groups: ['eng'] },
    resource: 'orders',
    createdAt: at(0),
    expiresAt: at(900),
    required: 2,
    link: 'http://127.0.0.1/approvals/apr_aaaaaaaaaaaaaaaaaaaa',
    statement: { sessionId: 's', grant: 'ddl', text: 'DROP TABLE x', hash: 'h', mode: 'fail_fast', facts: { kinds: ['ddl.drop'], tables: ['x'], functions: [], opaque: false }, approvalTtl: 600 },
    ...over,
  };
}

const vote = (type: 'approve' | 'deny', subject: string, s: number): ApprovalEventRow => ({ type, by: { issuer: IDP, subject, kind: 'person' }, reason: 'r', time: at(s) });

describe('foldStatus', () => {
  it('needs `required` approvals, and one denial before that denies', () => {
    const r = request();
    expect(foldStatus(r, [vote('approve', 'bob', 1)], new Date(at(2))).state).toBe('pending');
    const two = foldStatus(r, [vote('approve', 'bob', 1), vote('approve', 'carol', 3)], new Date(at(4)));
    expect(two).toMatchObject({ state: 'approved', decidedAt: at(3), validUntil: at(603) });
    expect(foldStatus(r, [vote('approve', 'bob', 1), vote('deny', 'carol', 3)], new Date(at(4))).state).toBe('denied');
  });

  it('expires an undecided request at expiresAt and an unused approval at validUntil', () => {
    const r = request({ required: 1 });
    expect(foldStatus(r, [], new Date(at(899))).state).toBe('pending');
    expect(foldStatus(r, [], new Date(at(900))).state).toBe('expired');
    const approved = [vote('approve', 'bob', 10)];
    expect(foldStatus(r, approved, new Date(at(609))).state).toBe('approved');
    expect(foldStatus(r, approved, new Date(at(610))).state).toBe('expired');
    expect(foldStatus(r, [...approved, { type: 'use', time: at(20) }], new Date(at(5000))).state).toBe('used');
  });

  it('ends a pending request that was cancelled, and an access grant at the end of its duration', () => {
    expect(foldStatus(request(), [{ type: 'cancel', time: at(5) }], new Date(at(6))).state).toBe('cancelled');
    const access = request({ kind: 'access', required: 1, statement: undefined, access: { grant: 'write', duration: 7200 } });
    const s = foldStatus(access, [vote('approve', 'bob', 100)], new Date(at(200)));
    expect(s).toMatchObject({ state: 'approved', validUntil: at(7300) });
    expect(foldStatus(access, [vote('approve', 'bob', 100)], new Date(at(7300))).state).toBe('expired');
  });

  it('is decided by the first decisive vote, whatever follows (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.record({ deny: fc.boolean(), who: fc.integer({ min: 0, max: 5 }) }), { maxLength: 8 }), fc.integer({ min: 1, max: 4 }), (votes, required) => {
        const seen = new Set<number>();
        const distinct = votes.filter((v) => !seen.has(v.who) && seen.add(v.who));
        const events = distinct.map((v, i) => vote(v.deny ? 'deny' : 'approve', `approver-${v.who}`, i + 1));
        let expected: string = 'pending';
        let approvals = 0;
        for (const v of distinct) {
          if (v.deny) {
            expected = 'denied';
            break;
          }
          if (++approvals >= required) {
            expected = 'approved';
            break;
          }
        }
        const s = foldStatus(request({ required }), events, new Date(at(10)));
        expect(s.state).toBe(expected);
        expect(s.decisions).toHaveLength(distinct.length);
      }),
    );
  });
});

describe('holdFor', () => {
  const pols = policies(
    { name: 'ops', when: { groups: ['ops'] }, resources: ['orders'], grants: ['write', 'ddl'] },
    { name: 'drops', when: { groups: ['ops'] }, resources: ['orders'], approval: { statements: { kinds: ['ddl.drop'] }, approvers } },
    { name: 'deletes-100', when: { groups: ['ops'] }, resources: ['*'], approval: { statements: { kinds: ['delete'] }, rows_over: 100, approvers } },
    { name: 'deletes-10', when: { groups: ['ops'] }, resources: ['orders'], approval: { statements: { kinds: ['delete'] }, rows_over: 10, approvers } },
    { name: 'orders-any-delete', when: { groups: ['ops'] }, resources: ['orders'], approval: { statements: { kinds: ['delete'], tables: ['public.orders'] }, approvers } },
    { name: 'opaque', when: { groups: ['ops'] }, resources: ['orders'], approval: { statements: { opaque: true }, approvers } },
  );
  const ops = principal({ groups: ['ops'] });

  it('holds what a rule matches, for the principals and resources it names', () => {
    expect(holdFor(pols, ops, 'orders', [facts('ddl.drop', 'DROP TABLE t')])?.policy).toBe('drops');
    expect(holdFor(pols, principal({ groups: ['dev'] }), 'orders', [facts('ddl.drop', 'DROP TABLE t')])).toBeUndefined();
    expect(holdFor(pols, ops, 'billing', [facts('ddl.drop', 'DROP TABLE t')])).toBeUndefined();
    expect(holdFor(pols, ops, '*', [facts('delete', 'DELETE FROM t')])).toBeUndefined();
    expect(holdFor(pols, ops, 'orders', [facts('select', 'SELECT 1')])).toBeUndefined();
  });

  it('prefers an unconditional hold over a row threshold, then the lowest threshold', () => {
    expect(holdFor(pols, ops, 'orders', [facts('delete', 'DELETE FROM t')])?.policy).toBe('deletes-10');
    expect(holdFor(pols, ops, 'billing', [facts('delete', 'DELETE FROM t')])?.policy).toBe('deletes-100');
    expect(holdFor(pols, ops, 'orders', [facts('delete', 'DELETE FROM orders', { tablesWritten: ['public.orders'] })])?.policy).toBe('orders-any-delete');
  });

  it('looks inside an EXECUTE at the body it runs, and holds opaque statements a rule names', () => {
    const exec = facts('execute', 'EXECUTE p', { opaque: false, body: facts('ddl.drop', 'DROP TABLE t') });
    expect(holdFor(pols, ops, 'orders', [exec])?.policy).toBe('drops');
    expect(holdFor(pols, ops, 'orders', [facts('do', 'DO $$ $$', { opaque: true })])?.policy).toBe('opaque');
  });

  it('does not depend on the order of policies or statements (property)', () => {
    const statements = [facts('delete', 'DELETE FROM t'), facts('ddl.drop', 'DROP TABLE t'), facts('select', 'SELECT 1'), facts('delete', 'DELETE FROM orders', { tablesWritten: ['public.orders'] })];
    fc.assert(
      fc.property(fc.shuffledSubarray(pols, { minLength: 0 }), fc.shuffledSubarray(statements, { minLength: 1 }), (some, stmts) => {
        const a = holdFor(some, ops, 'orders', stmts)?.policy;
        const b = holdFor([...some].reverse(), ops, 'orders', [...stmts].reverse())?.policy;
        expect(a).toBe(b);
      }),
    );
  });
});

describe('mayDecide', () => {
  const pols = policies({ name: 'hold', when: { groups: ['eng'] }, resources: ['orders'], approval: { statements: { kinds: ['ddl.drop'] }, approvers: [{ groups: ['dba', 'eng'] }] } });

  it('never lets the requester decide, even when an approver entry matches them (property)', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1 }), fc.string({ minLength: 1 }), (issuer, subject) => {
        const r = request({ requester: { issuer, subject, kind: 'person', groups: ['dba'] } });
        const d = mayDecide(pols, r, principal({ issuer, subject, groups: ['dba', 'eng'] }));
        expect(d).toMatchObject({ ok: false, code: 'self_approval' });
      }),
    );
  });

  it('refuses non-approvers, and every decision once the rule is gone', () => {
    expect(mayDecide(pols, request(), principal({ subject: 'bob', groups: ['dba'] }))).toEqual({ ok: true });
    expect(mayDecide(pols, request(), principal({ subject: 'mallory', groups: ['ops'] }))).toMatchObject({ ok: false, code: 'not_approver' });
    expect(mayDecide(pols, request({ rule: 'removed' }), principal({ subject: 'bob', groups: ['dba'] }))).toMatchObject({ ok: false, code: 'rule_gone' });
    // A same-named subject from another issuer is someone else.
    expect(mayDecide(pols, request(), principal({ issuer: 'https://other.example.com', subject: 'alice', groups: ['dba'] }))).toEqual({ ok: true });
  });
});

describe('accessStillAllowed', () => {
  const grant = request({ kind: 'access', rule: 'b-write', required: 1, statement: undefined, access: { grant: 'write', duration: 3600 } });
  const rule = (name: string, max = '2h') => ({ name, when: { groups: ['eng'] }, resources: ['orders'], access: { grants: ['write'], max_duration: max, approvers } });
  const alice = principal({ subject: 'alice', groups: ['eng'] });

  it('holds while the policy it was approved under still allows it, whatever other access policies come and go', () => {
    expect(accessStillAllowed(policies(rule('b-write')), alice, grant)).toBe(true);
    expect(accessStillAllowed(policies(rule('a-write'), rule('b-write')), alice, grant)).toBe(true);
    expect(accessStillAllowed(policies(rule('a-write')), alice, grant)).toBe(false);
    expect(accessStillAllowed(policies(rule('b-write', '30m')), alice, grant)).toBe(false);
    expect(accessStillAllowed(policies(rule('b-write')), principal({ subject: 'alice', groups: ['ops'] }), grant)).toBe(false);
  });
});

describe('printable', () => {
  it('shows control characters and bidirectional overrides as escapes, and keeps line breaks', () => {
    expect(printable('DROP TABLE x;\n-- ok\tfine')).toBe('DROP TABLE x;\n-- ok\tfine');
    expect(printable('harmless\u001b[2K\rDROP')).toBe('harmless\\u001b[2K\\u000dDROP');
    expect(printable('abc\u202edcba')).toBe('abc\\u202edcba');
  });
});

describe('what an approval is bound to', () => {
  it('gives every different (principal, resource, text, parameters) its own hash (property)', () => {
    const tuple = fc.tuple(fc.string(), fc.string(), fc.string(), fc.string(), fc.option(fc.string(), { nil: undefined }));
    fc.assert(
      fc.property(tuple, tuple, (a, b) => {
        fc.pre(JSON.stringify(a) !== JSON.stringify(b));
        const h = (x: typeof a) => statementHash(KEY, { issuer: x[0], subject: x[1], kind: 'person' }, x[2], x[3], x[4]);
        expect(h(a)).not.toBe(h(b));
      }),
    );
  });

  it('is keyed: without the key, a guess at the text cannot be checked against the hash', () => {
    const who = { issuer: IDP, subject: 'alice', kind: 'person' as const };
    const text = "ALTER ROLE app PASSWORD 'hunter2'";
    expect(statementHash(KEY, who, 'orders', text, undefined)).not.toBe(statementHash(Buffer.alloc(32, 8), who, 'orders', text, undefined));
    expect(statementHash(KEY, who, 'orders', text, undefined)).toBe(statementHash(Buffer.alloc(32, 7), who, 'orders', text, undefined));
  });

  it('digests the exact parameter bytes and formats, not the recorded (truncated, redacted) values', () => {
    const digest = (formats: number[], params: (Buffer | null)[], redact = false) => {
      const tr = new StatementTracker({ redactTypeOids: new Set(redact ? [17] : []), maxParamChars: 4 });
      tr.parse('', 'DELETE FROM t WHERE a = $1 AND b = $2', []);
      tr.bind('', '', formats, params);
      tr.execute('');
      return tr.paramsDigest('')!;
    };
    const b = (s: string) => Buffer.from(s);
    expect(digest([0], [b('ab'), b('c')])).not.toBe(digest([0], [b('a'), b('bc')]));
    expect(digest([0], [null, b('x')])).not.toBe(digest([0], [b(''), b('x')]));
    expect(digest([0], [b('1'), b('2')])).not.toBe(digest([1], [b('1'), b('2')]));
    // Recorded values are cut at maxParamChars; the digest is not.
    expect(digest([0], [b('aaaaaaaa1'), null])).not.toBe(digest([0], [b('aaaaaaaa2'), null]));
    expect(digest([1], [b('secret-1'), null], true)).not.toBe(digest([1], [b('secret-2'), null], true));
  });
});

describe('approval policy configuration', () => {
  const base = { resources: [{ name: 'orders', type: 'postgres', upstream: { host: 'db', database: 'app' }, credentials: { read: { user: 'r', password: '${env:PW}' } } }], server: { postgres: { allow_plaintext: true } } };
  const check = (policy: Record<string, unknown>) => () => validateConfig({ ...base, policies: [{ name: 'p', when: { groups: ['ops'] }, resources: ['orders'], ...policy }] });

  it('accepts a hold rule and an access rule', () => {
    const cfg = validateConfig({
      ...base,
      policies: [
        { name: 'hold', when: { groups: ['ops'] }, resources: ['orders'], approval: { statements: { kinds: ['delete'] }, rows_over: 100, mode: 'fail_fast', approvers, required: 2, request_ttl: '30m', approval_ttl: '2h' } },
        { name: 'access', when: { groups: ['ops'] }, resources: ['orders'], access: { grants: ['write'], max_duration: '4h', approvers } },
      ],
    });
    expect(cfg.policies[0]!.approval).toMatchObject({ rows_over: 100, required: 2, request_ttl: 1800, approval_ttl: 7200 });
    expect(cfg.policies[1]!.access).toMatchObject({ max_duration: 14400, request_ttl: 900 });
  });

  it('refuses mixtures and rules that cannot be enforced, naming the key', () => {
    expect(check({ grants: ['read'], approval: { statements: { kinds: ['ddl.drop'] }, approvers } })).toThrow(/policies\[0\]\.grants: an approval policy only names what needs a decision/);
    expect(check({ approval: { statements: { kinds: ['select'] }, rows_over: 5, approvers } })).toThrow(/policies\[0\]\.approval\.statements\.kinds: rows_over counts rows changed/);
    expect(check({ approval: { statements: { tables: ['public.t'] }, rows_over: 5, approvers } })).toThrow(/rows_over counts rows changed/);
    expect(check({ effect: 'deny', approval: { statements: { kinds: ['ddl.drop'] }, approvers } })).toThrow(/policies\[0\]\.effect: approval has no deny effect/);
    expect(check({ approval: { statements: { kinds: ['ddl.drop'] }, approvers: [] } })).toThrow(/policies\[0\]\.approval\.approvers/);
    expect(check({ approval: { statements: { kinds: ['ddl.drop'] }, approvers }, access: { grants: ['write'], approvers } })).toThrow(/not both/);
    expect(check({ access: { grants: ['write'], approvers, max_duration: 0 } })).toThrow(/max_duration/);
    expect(check({ approval: { statements: { kinds: ['ddl.drop'] }, approvers }, max_session_duration: '1h' })).toThrow(/policies\[0\]\.max_session_duration/);
    expect(check({ access: { grants: ['write'], approvers }, max_session_duration: '30m' })).not.toThrow();
  });
});
