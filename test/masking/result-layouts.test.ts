import { describe, expect, it } from 'vitest';
import type { FieldDescription } from '../../src/protocols/postgres/codec/backend-parser.js';
import { ResultLayouts, type StatementOutput } from '../../src/protocols/postgres/masking/result-layouts.js';
import type { RowPlan } from '../../src/protocols/postgres/masking/row-plan.js';

/** A plan that says what it was made from. */
interface TaggedPlan extends RowPlan {
  readonly fields: readonly string[];
  readonly formats: readonly number[] | undefined;
  readonly out: StatementOutput;
}

function field(name: string, format = 0): FieldDescription {
  return { name, tableOid: 16384, columnAttr: 1, typeOid: 25, typeSize: -1, typeMod: -1, format };
}

function layouts(): { l: ResultLayouts; calls: TaggedPlan[]; plan: () => { fields: string[]; formats: readonly number[] | undefined; out: StatementOutput } | undefined } {
  const calls: TaggedPlan[] = [];
  const l = new ResultLayouts((fields, formats, out) => {
    const p: TaggedPlan = { columns: [], passthrough: false, unknownRelations: [], fields: fields.map((f) => `${f.name}/${f.format}`), formats, out };
    calls.push(p);
    return p;
  });
  const plan = () => {
    const p = l.rowPlan() as TaggedPlan | undefined;
    return p && { fields: [...p.fields], formats: p.formats, out: p.out };
  };
  return { l, calls, plan };
}

const A: StatementOutput = { maskAll: false, stableShape: true };
const B: StatementOutput = { maskAll: true, stableShape: true };
const C: StatementOutput = { maskAll: false, copy: { format: { kind: 'binary' }, every: { typeOid: 25, format: 1, detect: false } } };
/** A FETCH or EXECUTE: its shape may differ from what a Describe of the statement said. */
const UNSTABLE: StatementOutput = { maskAll: false, stableShape: false };

describe('ResultLayouts: simple query', () => {
  it('gives each statement of a multi-statement query its own output decision', () => {
    const { l, plan } = layouts();
    l.query([A, B, C]);
    expect(plan()).toBeUndefined();
    l.rowDescription([field('a')]);
    expect(plan()).toEqual({ fields: ['a/0'], formats: undefined, out: A });
    l.statementEnded();
    expect(plan()).toBeUndefined();
    // The second statement is a command: CommandComplete without rows.
    l.statementEnded();
    l.rowDescription([field('c'), field('d')]);
    expect(plan()).toEqual({ fields: ['c/0', 'd/0'], formats: undefined, out: C });
    l.statementEnded();
    l.ready('I');
    expect(plan()).toBeUndefined();
  });

  it('uses the last decision for results beyond the list, and none after an error', () => {
    const { l, plan } = layouts();
    l.query([B]);
    l.rowDescription([field('a')]);
    l.statementEnded();
    l.rowDescription([field('b')]);
    expect(plan()?.out).toBe(B);
    l.error();
    expect(plan()).toBeUndefined();
    l.ready('E');
    l.query([A]);
    l.rowDescription([field('z')]);
    expect(plan()).toEqual({ fields: ['z/0'], formats: undefined, out: A });
  });

  it('forgets a withdrawn query, and only a query', () => {
    const { l, plan } = layouts();
    l.query([B]);
    l.withdrawLastQuery();
    l.query([A]);
    l.rowDescription([field('a')]);
    expect(plan()?.out).toBe(A);
    l.statementEnded();
    l.ready('I');

    l.parse('s', B);
    l.withdrawLastQuery();
    l.describe('S', 's');
    l.sync();
    l.parseComplete();
    l.rowDescription([field('x')]);
    l.ready('I');
    l.bind('', 's', [0]);
    l.execute('');
    l.sync();
    l.bindComplete();
    expect(plan()).toEqual({ fields: ['x/0'], formats: [0], out: B });
  });

  it('tracks COPY TO output and ends it with the statement', () => {
    const { l } = layouts();
    expect(l.copyOutput()).toBeUndefined();
    l.query([A, C]);
    l.statementEnded();
    l.copyOut();
    expect(l.copyOutput()).toBe(C);
    l.statementEnded();
    expect(l.copyOutput()).toBeUndefined();
  });
});

describe('ResultLayouts: extended protocol', () => {
  function describedStatement(l: ResultLayouts, name: string, out: StatementOutput, fields: FieldDescription[]): void {
    l.parse(name, out);
    l.describe('S', name);
    l.sync();
    l.parseComplete();
    l.rowDescription(fields);
    l.ready('I');
  }

  it('plans an Execute without Describe from the statement fields with the Bind formats', () => {
    const { l, plan } = layouts();
    describedStatement(l, 'q', B, [field('id'), field('email')]);
    l.bind('', 'q', [1, 0]);
    l.execute('');
    l.sync();
    expect(plan()).toBeUndefined();
    l.bindComplete();
    expect(plan()).toEqual({ fields: ['id/0', 'email/0'], formats: [1, 0], out: B });
    l.statementEnded();
    expect(plan()).toBeUndefined();
    l.ready('I');
  });

  it('does not trust a Describe of a FETCH or EXECUTE statement for later runs: without a Describe of the portal the layout is unknown', () => {
    const { l, plan } = layouts();
    describedStatement(l, 'f', UNSTABLE, [field('name')]);
    l.bind('', 'f', []);
    l.execute('');
    l.sync();
    l.bindComplete();
    expect(plan()).toBeUndefined();
    l.statementEnded();
    l.ready('I');
  });

  it('plans from a Describe of the portal with the formats it reports', () => {
    const { l, plan } = layouts();
    l.parse('', A);
    l.bind('', '', [1]);
    l.describe('P', '');
    l.execute('');
    l.sync();
    l.parseComplete();
    l.bindComplete();
    l.rowDescription([field('email', 1)]);
    expect(plan()).toEqual({ fields: ['email/1'], formats: undefined, out: A });
    l.statementEnded();
    l.ready('I');
  });

  it('has no layout for a statement executed without any Describe', () => {
    const { l, plan } = layouts();
    l.parse('', B);
    l.bind('', '', []);
    l.execute('');
    l.sync();
    l.parseComplete();
    l.bindComplete();
    expect(plan()).toBeUndefined();
  });

  it('has no layout for a statement that described no data', () => {
    const { l, plan } = layouts();
    l.parse('n', A);
    l.describe('S', 'n');
    l.sync();
    l.parseComplete();
    l.noData();
    l.ready('I');
    l.bind('', 'n', []);
    l.execute('');
    l.sync();
    l.bindComplete();
    expect(plan()).toBeUndefined();
  });

  it('leaves no layout behind a failed Parse, and drops what it replaced', () => {
    const { l, plan } = layouts();
    describedStatement(l, '', A, [field('old')]);
    l.parse('', B);
    l.describe('S', '');
    l.sync();
    l.error();
    l.ready('I');
    l.bind('', '', []);
    l.execute('');
    l.sync();
    l.bindComplete();
    expect(plan()).toBeUndefined();
  });

  it('skips the rest of a failed batch up to Sync, and keeps going after it', () => {
    const { l, plan } = layouts();
    describedStatement(l, 'good', A, [field('g')]);
    l.parse('bad', B);
    l.describe('S', 'bad');
    l.bind('p', 'good', [0]);
    l.execute('p');
    l.sync();
    l.bind('p2', 'good', [1]);
    l.execute('p2');
    l.sync();
    l.error();
    expect(plan()).toBeUndefined();
    l.ready('I');
    l.bindComplete();
    expect(plan()).toEqual({ fields: ['g/0'], formats: [1], out: A });
  });

  it('resumes a suspended portal with the same layout until the transaction ends', () => {
    const { l, plan, calls } = layouts();
    describedStatement(l, 's', A, [field('a')]);
    l.bind('cur', 's', []);
    l.describe('P', 'cur');
    l.execute('cur');
    l.sync();
    l.bindComplete();
    l.rowDescription([field('a', 0)]);
    expect(plan()?.fields).toEqual(['a/0']);
    l.portalSuspended();
    expect(plan()).toBeUndefined();
    l.ready('T');
    l.execute('cur');
    l.sync();
    expect(plan()).toEqual({ fields: ['a/0'], formats: undefined, out: A });
    expect(plan()).toEqual({ fields: ['a/0'], formats: undefined, out: A });
    expect(calls).toHaveLength(2);
    l.statementEnded();
    l.ready('I');
    l.execute('cur');
    l.sync();
    expect(plan()).toBeUndefined();
  });

  it('forgets closed statements and portals once the backend confirms', () => {
    const { l, plan } = layouts();
    describedStatement(l, 's', A, [field('a')]);
    l.bind('p', 's', []);
    l.describe('P', 'p');
    l.sync();
    l.bindComplete();
    l.rowDescription([field('a')]);
    l.ready('T');
    l.close('P', 'p');
    l.sync();
    l.execute('p');
    l.sync();
    l.closeComplete();
    l.ready('T');
    expect(plan()).toBeUndefined();
    l.ready('T');

    l.close('S', 's');
    l.sync();
    l.closeComplete();
    l.ready('I');
    l.bind('', 's', []);
    l.execute('');
    l.sync();
    l.bindComplete();
    expect(plan()).toBeUndefined();
  });

  it('ignores Syncs sent with a COPY FROM STDIN until the copy ends', () => {
    const { l, plan } = layouts();
    l.parse('', A);
    l.bind('', '', []);
    l.execute('');
    l.sync();
    l.parseComplete();
    l.bindComplete();
    l.copyIn();
    l.sync();
    l.copyEnd();
    l.sync();
    l.statementEnded();
    l.ready('I');
    describedStatement(l, 'next', B, [field('n')]);
    l.bind('', 'next', [1]);
    l.execute('');
    l.sync();
    l.bindComplete();
    expect(plan()).toEqual({ fields: ['n/0'], formats: [1], out: B });
  });

  it('keeps a simple COPY FROM STDIN aligned too', () => {
    const { l, plan } = layouts();
    l.query([A]);
    l.copyIn();
    l.copyEnd();
    l.statementEnded();
    l.ready('I');
    l.query([B]);
    l.rowDescription([field('x')]);
    expect(plan()?.out).toBe(B);
  });

  it('names the COPY TO decision of the executing portal', () => {
    const { l } = layouts();
    l.parse('', C);
    l.bind('', '', []);
    l.execute('');
    l.sync();
    l.parseComplete();
    l.bindComplete();
    l.copyOut();
    expect(l.copyOutput()).toBe(C);
    l.statementEnded();
    expect(l.copyOutput()).toBeUndefined();
  });

  it('has no layout for rows nothing announced', () => {
    const { l, plan } = layouts();
    expect(plan()).toBeUndefined();
    l.sync();
    expect(plan()).toBeUndefined();
    l.rowDescription([field('stray')]);
    expect(plan()).toBeUndefined();
    l.execute('nobody');
    l.ready('I');
    expect(plan()).toBeUndefined();
  });
});
