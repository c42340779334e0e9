import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BackendScanner } from '../../../src/protocols/postgres/backend-scanner.js';
import { rowsOf, StatementTracker, type StatementEnd, type StatementStart } from '../../../src/protocols/postgres/statement-tracker.js';

const BYTEA = 17;
const TEXT = 25;

/**
 * One message as the relay hands it to the tracker. Client side:
 * Q query, P parse, B bind, E execute, D describe, H flush, C close, S sync,
 * c CopyDone/CopyFail. Backend side: CC CommandComplete, Err ErrorResponse,
 * I EmptyQueryResponse, s PortalSuspended, G CopyInResponse, Z ReadyForQuery.
 */
type Step =
  | ['Q', string]
  | ['P', string, string, number[]?]
  | ['B', string, string, (string | Buffer | null)[]?, number[]?]
  | ['E', string, number?]
  | ['D']
  | ['H']
  | ['C', 'S' | 'P', string]
  | ['S']
  | ['1']
  | ['c']
  | ['CC', string]
  | ['Err', string]
  | ['I']
  | ['s']
  | ['G']
  | ['Z', ('I' | 'T' | 'E')?];

function tracker(): StatementTracker {
  let clock = 0;
  return new StatementTracker({ redactTypeOids: new Set([BYTEA]), maxParamChars: 16, now: () => clock++ });
}

function showStart(s: StatementStart): string {
  const params = s.params ? ` (${s.params.map((p) => (p === null ? 'NULL' : p)).join(', ')})` : '';
  const name = s.statementName ? ` as ${s.statementName}` : '';
  return `start ${s.id} ${s.protocol} ${JSON.stringify(s.text)}${name}${params}`;
}

function showEnd(e: StatementEnd): string {
  const parts = [`end ${e.id}`, `[${e.tags.join('|')}]`, `rows=${e.rows}`];
  if (e.error) parts.push(`error=${e.error.sqlstate}`);
  if (e.skipped) parts.push('skipped');
  if (e.suspended) parts.push('suspended');
  return parts.join(' ');
}

/** Without bytea on the redaction list, untyped binary parameters are shown as hex. */
function untypedBinaryShown(): StatementTracker {
  return new StatementTracker({ redactTypeOids: new Set(), maxParamChars: 16 });
}

/** Feeds the steps to a fresh tracker; returns the events it produced, in order, and the tracker. */

function run(steps: readonly Step[], t = tracker()): { log: string[]; t: StatementTracker } {
  const log: string[] = [];
  const ended = (e: StatementEnd | undefined) => e && log.push(showEnd(e));
  for (const step of steps) {
    switch (step[0]) {
      case 'Q':
        log.push(showStart(t.query(step[1])));
        break;
      case 'P':
        t.parse(step[1], step[2], step[3] ?? []);
        break;
      case 'B': {
        const values = (step[3] ?? []).map((v) => (typeof v === 'string' ? Buffer.from(v) : v));
        t.bind(step[1], step[2], step[4] ?? [], values);
        break;
      }
      case 'E':
        log.push(showStart(t.execute(step[1], step[2] ?? 0)));
        break;
      case 'D':
        t.other('describe');
        break;
      case 'H':
        t.other('flush');
        break;
      case 'C':
        t.other({ close: step[1], name: step[2] });
        break;
      case 'S':
        t.sync();
        break;
      case '1':
        t.parseComplete();
        break;
      case 'c':
        t.copyEnd();
        break;
      case 'CC':
        ended(t.commandComplete(step[1]));
        break;
      case 'Err':
        ended(t.error(step[1], `error ${step[1]}`));
        break;
      case 'I':
        ended(t.endWithoutTag());
        break;
      case 's':
        ended(t.portalSuspended());
        break;
      case 'G':
        t.copyIn();
        break;
      case 'Z':
        for (const e of t.ready(step[1] ?? 'I')) ended(e);
        break;
    }
  }
  return { log, t };
}

const extended = (sql: string, params: string[] = []): Step[] => [['P', '', sql], ['B', '', '', params], ['D'], ['E', '']];

interface Case {
  readonly name: string;
  readonly steps: Step[];
  readonly events: string[];
}

const CASES: Case[] = [
  {
    name: 'simple query',
    steps: [['Q', 'select 1'], ['CC', 'SELECT 1'], ['Z']],
    events: ['start 1 simple "select 1"', 'end 1 [SELECT 1] rows=1'],
  },
  {
    name: 'several statements in one Query: one statement, every tag, rows summed',
    steps: [['Q', 'select 1; update t set x = 1; create table u ()'], ['CC', 'SELECT 1'], ['CC', 'UPDATE 7'], ['CC', 'CREATE TABLE'], ['Z']],
    events: ['start 1 simple "select 1; update t set x = 1; create table u ()"', 'end 1 [SELECT 1|UPDATE 7|CREATE TABLE] rows=8'],
  },
  {
    name: 'a Query that fails part way keeps the tags before the error',
    steps: [['Q', 'select 1; select 1/0; select 3'], ['CC', 'SELECT 1'], ['Err', '22012'], ['Z']],
    events: ['start 1 simple "select 1; select 1/0; select 3"', 'end 1 [SELECT 1] rows=1 error=22012'],
  },
  {
    name: 'pipelined Queries are answered in order',
    steps: [['Q', 'select 1'], ['Q', 'select 2'], ['CC', 'SELECT 1'], ['Z'], ['CC', 'SELECT 2'], ['Z', 'T']],
    events: ['start 1 simple "select 1"', 'start 2 simple "select 2"', 'end 1 [SELECT 1] rows=1', 'end 2 [SELECT 2] rows=2'],
  },
  {
    name: 'empty simple query',
    steps: [['Q', ''], ['I'], ['Z']],
    events: ['start 1 simple ""', 'end 1 [] rows=null'],
  },
  {
    name: 'extended query with parameters',
    steps: [...extended('select $1, $2', ['a', 'b']), ['S'], ['CC', 'SELECT 1'], ['Z']],
    events: ['start 1 extended "select $1, $2" (a, b)', 'end 1 [SELECT 1] rows=1'],
  },
  {
    name: 'extended with Flush before Sync: the backend answers before the Sync arrives',
    steps: [...extended('select 1'), ['H'], ['CC', 'SELECT 1'], ...extended('select 2'), ['H'], ['CC', 'SELECT 2'], ['S'], ['Z']],
    events: ['start 1 extended "select 1" ()', 'end 1 [SELECT 1] rows=1', 'start 2 extended "select 2" ()', 'end 2 [SELECT 2] rows=2'],
  },
  {
    name: 'an error mid-pipeline completes that statement and skips the rest of the unit',
    steps: [...extended('select 1'), ...extended('select 1/0'), ...extended('select 3'), ['S'], ['CC', 'SELECT 1'], ['Err', '22012'], ['Z', 'I']],
    events: [
      'start 1 extended "select 1" ()',
      'start 2 extended "select 1/0" ()',
      'start 3 extended "select 3" ()',
      'end 1 [SELECT 1] rows=1',
      'end 2 [] rows=null error=22012',
      'end 3 [] rows=null skipped',
    ],
  },
  {
    name: 'the unit after a failed one runs normally',
    steps: [...extended('select 1/0'), ['S'], ...extended('select 2'), ['S'], ['Err', '22012'], ['Z'], ['CC', 'SELECT 1'], ['Z']],
    events: ['start 1 extended "select 1/0" ()', 'start 2 extended "select 2" ()', 'end 1 [] rows=null error=22012', 'end 2 [SELECT 1] rows=1'],
  },
  {
    name: 'a Parse error is charged to the Execute that follows it',
    steps: [['P', '', 'selec 1'], ['B', '', ''], ['E', ''], ['S'], ['Err', '42601'], ['Z']],
    events: ['start 1 extended "selec 1" ()', 'end 1 [] rows=null error=42601'],
  },
  {
    name: 'a Parse-only unit (prepare) starts nothing, even when it fails',
    steps: [['P', 'bad', 'selec 1'], ['S'], ['Err', '42601'], ['Z'], ['Q', 'select 1'], ['CC', 'SELECT 1'], ['Z']],
    events: ['start 1 simple "select 1"', 'end 1 [SELECT 1] rows=1'],
  },
  {
    name: 'a named statement prepared once and executed in later units',
    steps: [
      ['P', 'by_id', 'select * from t where id = $1'],
      ['S'],
      ['Z'],
      ['B', '', 'by_id', ['1']],
      ['E', ''],
      ['S'],
      ['B', '', 'by_id', ['2']],
      ['E', ''],
      ['S'],
      ['CC', 'SELECT 1'],
      ['Z'],
      ['CC', 'SELECT 0'],
      ['Z'],
    ],
    events: [
      'start 1 extended "select * from t where id = $1" as by_id (1)',
      'start 2 extended "select * from t where id = $1" as by_id (2)',
      'end 1 [SELECT 1] rows=1',
      'end 2 [SELECT 0] rows=0',
    ],
  },
  {
    name: 'Close forgets a statement: executing a portal of it records no text',
    steps: [['P', 'gone', 'select 1'], ['C', 'S', 'gone'], ['B', '', 'gone'], ['E', ''], ['S'], ['Err', '26000'], ['Z']],
    events: ['start 1 extended "" as gone ()', 'end 1 [] rows=null error=26000'],
  },
  {
    name: 'empty extended query',
    steps: [...extended(''), ['S'], ['I'], ['Z']],
    events: ['start 1 extended "" ()', 'end 1 [] rows=null'],
  },
  {
    name: 'PortalSuspended with maxRows: each Execute is a statement, a suspended one returned maxRows rows',
    steps: [
      ['P', '', 'select * from big'],
      ['B', 'cur', ''],
      ['E', 'cur', 100],
      ['H'],
      ['s'],
      ['E', 'cur', 100],
      ['H'],
      ['s'],
      ['E', 'cur', 100],
      ['H'],
      ['CC', 'SELECT 42'],
      ['C', 'P', 'cur'],
      ['S'],
      ['Z', 'T'],
    ],
    events: [
      'start 1 extended "select * from big" ()',
      'end 1 [] rows=100 suspended',
      'start 2 extended "select * from big" ()',
      'end 2 [] rows=100 suspended',
      'start 3 extended "select * from big" ()',
      'end 3 [SELECT 42] rows=42',
    ],
  },
  {
    name: 'PortalSuspended across Syncs inside a transaction',
    steps: [['P', '', 'select * from big'], ['B', 'cur', ''], ['E', 'cur', 2], ['S'], ['s'], ['Z', 'T'], ['E', 'cur', 2], ['S'], ['CC', 'SELECT 1'], ['Z', 'T']],
    events: ['start 1 extended "select * from big" ()', 'end 1 [] rows=2 suspended', 'start 2 extended "select * from big" ()', 'end 2 [SELECT 1] rows=1'],
  },
  {
    name: 'COPY FROM STDIN in a simple Query',
    steps: [['Q', 'copy t from stdin'], ['G'], ['c'], ['CC', 'COPY 3'], ['Z'], ['Q', 'select 1'], ['CC', 'SELECT 1'], ['Z']],
    events: ['start 1 simple "copy t from stdin"', 'end 1 [COPY 3] rows=3', 'start 2 simple "select 1"', 'end 2 [SELECT 1] rows=1'],
  },
  {
    name: 'COPY TO STDOUT needs no client messages',
    steps: [['Q', 'copy t to stdout'], ['CC', 'COPY 500'], ['Z']],
    events: ['start 1 simple "copy t to stdout"', 'end 1 [COPY 500] rows=500'],
  },
  {
    name: 'extended COPY FROM STDIN as libpq sends it: the Sync sent with the Execute is ignored by the backend',
    steps: [...extended('copy t from stdin'), ['S'], ['G'], ['c'], ['S'], ['CC', 'COPY 2'], ['Z'], ['Q', 'select 1'], ['CC', 'SELECT 1'], ['Z']],
    events: ['start 1 extended "copy t from stdin" ()', 'end 1 [COPY 2] rows=2', 'start 2 simple "select 1"', 'end 2 [SELECT 1] rows=1'],
  },
  {
    name: 'extended COPY where the CopyInResponse arrives before the client Syncs',
    steps: [...extended('copy t from stdin'), ['G'], ['S'], ['H'], ['c'], ['S'], ['CC', 'COPY 2'], ['Z'], ['Q', 'select 1'], ['CC', 'SELECT 1'], ['Z']],
    events: ['start 1 extended "copy t from stdin" ()', 'end 1 [COPY 2] rows=2', 'start 2 simple "select 1"', 'end 2 [SELECT 1] rows=1'],
  },
  {
    name: 'extended COPY the client aborts with CopyFail',
    steps: [...extended('copy t from stdin'), ['S'], ['G'], ['c'], ['S'], ['Err', '57014'], ['Z'], ['Q', 'select 1'], ['CC', 'SELECT 1'], ['Z']],
    events: ['start 1 extended "copy t from stdin" ()', 'end 1 [] rows=null error=57014', 'start 2 simple "select 1"', 'end 2 [SELECT 1] rows=1'],
  },
  {
    name: 'a client that sends the copy data before the CopyInResponse arrives',
    steps: [['Q', 'copy t from stdin'], ['c'], ['G'], ['CC', 'COPY 1'], ['Z'], ...extended('select 1'), ['S'], ['CC', 'SELECT 1'], ['Z']],
    events: ['start 1 simple "copy t from stdin"', 'end 1 [COPY 1] rows=1', 'start 2 extended "select 1" ()', 'end 2 [SELECT 1] rows=1'],
  },
  {
    name: 'a Sync with nothing before it is answered by its own ReadyForQuery',
    steps: [['S'], ['Q', 'select 1'], ['Z'], ['CC', 'SELECT 1'], ['Z']],
    events: ['start 1 simple "select 1"', 'end 1 [SELECT 1] rows=1'],
  },
  {
    name: 'backend messages with nothing pending produce nothing',
    steps: [['Err', '57P01'], ['CC', 'SELECT 1'], ['I'], ['s'], ['G'], ['Z']],
    events: [],
  },
];

describe('statement tracker', () => {
  it.each(CASES)('$name', ({ steps, events }) => {
    const { log, t } = run(steps);
    expect(log).toEqual(events);
    expect(t.pending).toBe(0);
  });

  it('follows the transaction status of ReadyForQuery', () => {
    const { t } = run([['Q', 'begin'], ['CC', 'BEGIN'], ['Z', 'T']]);
    expect(t.status).toBe('T');
    run([['Q', 'select 1/0'], ['Err', '22012'], ['Z', 'E']], t);
    expect(t.status).toBe('E');
    run([['Q', 'rollback'], ['CC', 'ROLLBACK'], ['Z', 'I']], t);
    expect(t.status).toBe('I');
  });

  it('records the text that runs when a client tries to redefine a named statement', () => {
    const steps: Step[] = [
      ['P', 's', 'DELETE FROM accounts'], ['1'], ['S'], ['Z', 'I'],
      // PostgreSQL refuses the second Parse (42P05); "s" is still the DELETE.
      ['P', 's', 'SELECT 1'], ['S'], ['Err', '42P05'], ['Z', 'I'],
      ['B', '', 's'], ['E', ''], ['S'], ['CC', 'DELETE 5'], ['Z', 'I'],
    ];
    expect(run(steps).log).toEqual(['start 1 extended "DELETE FROM accounts" as s ()', 'end 1 [DELETE 5] rows=5']);
  });

  it('forgets a Parse the backend rejected, so the next definition of the name counts', () => {
    const steps: Step[] = [
      ['P', 's', 'SELEC broken'], ['S'], ['Err', '42601'], ['Z', 'I'],
      ['P', 's', 'DELETE FROM accounts'], ['1'], ['B', '', 's'], ['E', ''], ['S'], ['CC', 'DELETE 1'], ['Z', 'I'],
    ];
    expect(run(steps).log).toEqual(['start 1 extended "DELETE FROM accounts" as s ()', 'end 1 [DELETE 1] rows=1']);
  });

  it('records the text a portal was bound to, even when the statement is replaced before Execute', () => {
    const steps: Step[] = [['P', '', 'DELETE FROM accounts'], ['1'], ['B', 'p', ''], ['P', '', 'SELECT 1'], ['1'], ['E', 'p'], ['S'], ['CC', 'DELETE 3'], ['Z', 'I']];
    expect(run(steps).log).toEqual(['start 1 extended "DELETE FROM accounts" ()', 'end 1 [DELETE 3] rows=3']);
  });

  it('drops portals when the transaction ends, as PostgreSQL does', () => {
    const inTransaction = run([['P', '', 'SELECT 1'], ['1'], ['B', 'p', ''], ['S'], ['Z', 'T'], ['E', 'p'], ['S'], ['CC', 'SELECT 1'], ['Z', 'T']]);
    expect(inTransaction.log[0]).toBe('start 1 extended "SELECT 1" ()');
    const afterCommit = run([['P', '', 'SELECT 1'], ['1'], ['B', 'p', ''], ['S'], ['Z', 'I'], ['E', 'p'], ['S'], ['Err', '34000'], ['Z', 'I']]);
    expect(afterCommit.log).toEqual(['start 1 extended ""', 'end 1 [] rows=null error=34000']);
  });

  it('redacts parameters of configured types and renders the rest', () => {
    const steps: Step[] = [
      ['P', 'ins', 'insert into files values ($1, $2, $3, $4)', [TEXT, BYTEA, 0, BYTEA]],
      ['B', '', 'ins', ['a.txt', Buffer.from('secret'), Buffer.from([0xde, 0xad]), null], [0, 1, 1, 0]],
      ['E', ''],
    ];
    // $3 is binary with no declared type: with bytea on the list it is treated as bytea.
    expect(run(steps).log).toEqual(['start 1 extended "insert into files values ($1, $2, $3, $4)" as ins (a.txt, [redacted], [redacted], NULL)']);
    expect(run(steps, untypedBinaryShown()).log).toEqual(['start 1 extended "insert into files values ($1, $2, $3, $4)" as ins (a.txt, \\x736563726574, \\xdead, NULL)']);
  });

  it('applies a single format code to every parameter', () => {
    const steps: Step[] = [['P', '', 'select $1, $2'], ['B', '', '', [Buffer.from([1]), Buffer.from([2])], [1]], ['E', '']];
    expect(run(steps, untypedBinaryShown()).log).toEqual(['start 1 extended "select $1, $2" (\\x01, \\x02)']);
  });

  it('truncates long parameters to maxParamChars, text and binary alike', () => {
    const steps: Step[] = [['P', '', 'select $1, $2'], ['B', '', '', ['x'.repeat(40), Buffer.alloc(40, 0xab)], [0, 1]], ['E', '']];
    const [start] = run(steps, untypedBinaryShown()).log;
    expect(start).toBe(`start 1 extended "select $1, $2" (${'x'.repeat(16)}…, \\x${'ab'.repeat(7)}…)`);
  });

  it('withdraws a Query that was not sent', () => {
    const t = tracker();
    t.query('select 1');
    expect(t.pending).toBe(1);
    t.withdrawLastQuery();
    expect(t.pending).toBe(0);
    expect(run([['Q', 'select 2'], ['CC', 'SELECT 1'], ['Z']], t).log).toEqual(['start 2 simple "select 2"', 'end 2 [SELECT 1] rows=1']);
  });

  it.each([
    ['SELECT 5', 5],
    ['INSERT 0 12', 12],
    ['UPDATE 0', 0],
    ['COPY 100000', 100000],
    ['CREATE TABLE', null],
    ['BEGIN', null],
    ['FETCH -1', null],
    ['SELECT 1.5', null],
  ] as const)('reads the row count of %s', (tag, rows) => {
    expect(rowsOf(tag)).toBe(rows);
  });
});

/*
 * The property: a generated client (simple Queries, COPY, extended units
 * with Flush, failing Parse/Bind/Execute, row limits) talks to a model
 * backend that follows the protocol, in any interleaving, and the tracker
 * must end every statement once with the outcome the backend gave it.
 */
type Outcome = { kind: 'ok'; rows: number } | { kind: 'error' } | { kind: 'empty' } | { kind: 'suspend'; maxRows: number };

interface Item {
  readonly parseFails: boolean;
  readonly bindFails: boolean;
  readonly outcome: Outcome;
  readonly flush: boolean;
}

interface CopySpec {
  readonly fail: boolean;
  readonly rows: number;
}

/** What a client sends, unit by unit, and how the backend will answer each statement. */
type ClientUnit =
  | { kind: 'query'; statements: number; failAt: number }
  | { kind: 'query-copy'; copy: CopySpec }
  | { kind: 'extended'; items: Item[]; copy?: CopySpec & { item: Item; syncWithExecute: boolean } }
  | { kind: 'sync' };

const rare = fc.integer({ min: 0, max: 7 }).map((n) => n === 0);
const outcomeArb: fc.Arbitrary<Outcome> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('ok' as const), rows: fc.nat(1000) }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'error' } as const) },
  { weight: 1, arbitrary: fc.constant({ kind: 'empty' } as const) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('suspend' as const), maxRows: fc.integer({ min: 1, max: 500 }) }) },
);
const itemArb: fc.Arbitrary<Item> = fc.record({ parseFails: rare, bindFails: rare, outcome: outcomeArb, flush: fc.boolean() });
const copyArb: fc.Arbitrary<CopySpec> = fc.record({ fail: rare, rows: fc.nat(100) });
const unitArb: fc.Arbitrary<ClientUnit> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('query' as const), statements: fc.integer({ min: 0, max: 3 }), failAt: fc.integer({ min: 0, max: 5 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('query-copy' as const), copy: copyArb }) },
  {
    weight: 4,
    arbitrary: fc.record(
      {
        kind: fc.constant('extended' as const),
        items: fc.array(itemArb, { maxLength: 4 }),
        copy: fc.record({ fail: rare, rows: fc.nat(100), item: itemArb, syncWithExecute: fc.boolean() }),
      },
      { requiredKeys: ['kind', 'items'] },
    ),
  },
  { weight: 1, arbitrary: fc.constant({ kind: 'sync' } as const) },
);

/** Messages on the wire; a started statement carries its id (the tracker numbers them in send order). */
type Msg =
  | { k: 'Q'; id: number; unit: Extract<ClientUnit, { kind: 'query' | 'query-copy' }> }
  | { k: 'P'; fails: boolean }
  | { k: 'B'; fails: boolean }
  | { k: 'E'; id: number; outcome: Outcome | { kind: 'copy' } }
  | { k: 'H' }
  | { k: 'S' }
  | { k: 'c'; id: number; copy: CopySpec; simple: boolean };

/** Client actions; `copy` waits until the backend started (or skipped) the COPY it belongs to. */
type Action = { k: 'send'; msg: Msg } | { k: 'copy'; id: number; copy: CopySpec; simple: boolean; syncWithExecute: boolean };

function clientActions(units: readonly ClientUnit[]): Action[] {
  let id = 0;
  const out: Action[] = [];
  const send = (msg: Msg) => out.push({ k: 'send', msg });
  for (const u of units) {
    switch (u.kind) {
      case 'query':
      case 'query-copy': {
        const qid = ++id;
        send({ k: 'Q', id: qid, unit: u });
        if (u.kind === 'query-copy') out.push({ k: 'copy', id: qid, copy: u.copy, simple: true, syncWithExecute: false });
        break;
      }
      case 'extended': {
        for (const item of u.items) {
          send({ k: 'P', fails: item.parseFails });
          send({ k: 'B', fails: item.bindFails });
          send({ k: 'E', id: ++id, outcome: item.outcome });
          if (item.flush) send({ k: 'H' });
        }
        if (u.copy) {
          send({ k: 'P', fails: u.copy.item.parseFails });
          send({ k: 'B', fails: u.copy.item.bindFails });
          const cid = ++id;
          send({ k: 'E', id: cid, outcome: { kind: 'copy' } });
          // libpq sends a Sync with the Execute and another after CopyDone; other clients only the second.
          if (u.copy.syncWithExecute) send({ k: 'S' });
          out.push({ k: 'copy', id: cid, copy: u.copy, simple: false, syncWithExecute: u.copy.syncWithExecute });
        } else send({ k: 'S' });
        break;
      }
      case 'sync':
        send({ k: 'S' });
        break;
    }
  }
  return out;
}

/**
 * A backend that follows the protocol: one ReadyForQuery per Query and per
 * Sync, ignore-till-Sync after an extended-protocol error, Sync and Flush
 * ignored in copy-in mode. It answers with tracker steps and notes the end
 * each statement must get.
 */
class Backend {
  readonly expected = new Map<number, string>();
  readonly copies = new Map<number, 'started' | 'skipped'>();
  private ignoring = false;
  /** The SQLSTATE of a Parse or Bind failure not yet charged to a statement. */
  private uncharged: string | undefined;
  private copying = false;

  answer(m: Msg): Step[] {
    switch (m.k) {
      case 'Q':
        return this.query(m.id, m.unit);
      case 'P':
      case 'B': {
        if (this.ignoring || !m.fails) return [];
        this.ignoring = true;
        this.uncharged = m.k === 'P' ? '42601' : '22P02';
        return [['Err', this.uncharged]];
      }
      case 'E':
        return this.execute(m.id, m.outcome);
      case 'H':
        return [];
      case 'S':
        if (this.copying) return [];
        this.ignoring = false;
        this.uncharged = undefined;
        return [['Z']];
      case 'c':
        return this.copyEnd(m.id, m.copy, m.simple);
    }
  }

  private query(id: number, u: Extract<ClientUnit, { kind: 'query' | 'query-copy' }>): Step[] {
    if (u.kind === 'query-copy') {
      this.copying = true;
      this.copies.set(id, 'started');
      return [['G']];
    }
    if (u.statements === 0) {
      this.expected.set(id, `end ${id} [] rows=null`);
      return [['I'], ['Z']];
    }
    const steps: Step[] = [];
    const tags: string[] = [];
    for (let i = 0; i < u.statements && i !== u.failAt; i++) {
      tags.push(`SELECT ${i + 1}`);
      steps.push(['CC', `SELECT ${i + 1}`]);
    }
    const failed = u.failAt < u.statements;
    if (failed) steps.push(['Err', '22012']);
    const rows = tags.length ? (tags.length * (tags.length + 1)) / 2 : null;
    this.expected.set(id, `end ${id} [${tags.join('|')}] rows=${rows}${failed ? ' error=22012' : ''}`);
    return [...steps, ['Z']];
  }

  private execute(id: number, outcome: Outcome | { kind: 'copy' }): Step[] {
    if (this.ignoring) {
      if (outcome.kind === 'copy') this.copies.set(id, 'skipped');
      this.expected.set(id, `end ${id} [] rows=null ${this.uncharged ? `error=${this.uncharged}` : 'skipped'}`);
      this.uncharged = undefined;
      return [];
    }
    switch (outcome.kind) {
      case 'ok':
        this.expected.set(id, `end ${id} [SELECT ${outcome.rows}] rows=${outcome.rows}`);
        return [['CC', `SELECT ${outcome.rows}`]];
      case 'error':
        this.ignoring = true;
        this.expected.set(id, `end ${id} [] rows=null error=42501`);
        return [['Err', '42501']];
      case 'empty':
        this.expected.set(id, `end ${id} [] rows=null`);
        return [['I']];
      case 'suspend':
        this.expected.set(id, `end ${id} [] rows=${outcome.maxRows} suspended`);
        return [['s']];
      case 'copy':
        this.copying = true;
        this.copies.set(id, 'started');
        return [['G']];
    }
  }

  private copyEnd(id: number, copy: CopySpec, simple: boolean): Step[] {
    this.copying = false;
    if (copy.fail) {
      this.expected.set(id, `end ${id} [] rows=null error=57014`);
      if (simple) return [['Err', '57014'], ['Z']];
      this.ignoring = true;
      return [['Err', '57014']];
    }
    this.expected.set(id, `end ${id} [COPY ${copy.rows}] rows=${copy.rows}`);
    return simple ? [['CC', `COPY ${copy.rows}`], ['Z']] : [['CC', `COPY ${copy.rows}`]];
  }
}

/**
 * Plays a conversation: at each step either the client sends its next
 * message or the backend answers the oldest message it has not answered,
 * as `choices` says (any order a real network could produce). Every client
 * message and backend answer goes to the tracker as the relay would feed it.
 */
function play(units: readonly ClientUnit[], choices: readonly boolean[]): { log: string[]; backend: Backend; t: StatementTracker; sent: number } {
  const t = tracker();
  const backend = new Backend();
  const actions = clientActions(units);
  const inFlight: Msg[] = [];
  const log: string[] = [];
  let sent = 0;
  let choice = 0;
  const toTracker = (steps: Step[]) => log.push(...run(steps, t).log);
  const send = (msg: Msg) => {
    inFlight.push(msg);
    if (msg.k === 'Q' || msg.k === 'E') sent++;
    const step: Step =
      msg.k === 'Q' ? ['Q', `q${msg.id}`] : msg.k === 'P' ? ['P', '', `e${sent + 1}`] : msg.k === 'B' ? ['B', '', ''] : msg.k === 'E' ? ['E', '', msg.outcome.kind === 'suspend' ? msg.outcome.maxRows : 0] : msg.k === 'c' ? ['c'] : [msg.k];
    toTracker([step]);
  };
  /** The client's next action, if it can take it now. */
  const clientStep = (): boolean => {
    const a = actions[0];
    if (!a) return false;
    if (a.k === 'send') {
      actions.shift();
      send(a.msg);
      return true;
    }
    const state = backend.copies.get(a.id);
    if (!state) return false;
    actions.shift();
    if (state === 'started') {
      send({ k: 'c', id: a.id, copy: a.copy, simple: a.simple });
      if (!a.simple) send({ k: 'S' });
    } else if (!a.syncWithExecute) send({ k: 'S' });
    return true;
  };
  const backendStep = (): boolean => {
    const m = inFlight.shift();
    if (!m) return false;
    toTracker(backend.answer(m));
    return true;
  };
  for (;;) {
    const clientFirst = choices[choice++ % Math.max(choices.length, 1)] ?? true;
    if (clientFirst ? clientStep() || backendStep() : backendStep() || clientStep()) continue;
    break;
  }
  expect(actions).toEqual([]);
  return { log, backend, t, sent };
}

describe('statement tracker on any well-formed conversation', () => {
  it('completes every started statement exactly once, with the outcome the backend gave it', () => {
    fc.assert(
      fc.property(fc.array(unitArb, { maxLength: 12 }), fc.array(fc.boolean(), { minLength: 1, maxLength: 64 }), (units, choices) => {
        const { log, backend, t, sent } = play(units, choices);
        const starts = log.filter((l) => l.startsWith('start ')).map((l) => Number(l.split(' ')[1]));
        const ends = log.filter((l) => l.startsWith('end '));
        expect(starts).toEqual(Array.from({ length: sent }, (_, i) => i + 1));
        const endIds = ends.map((l) => Number(l.split(' ')[1]));
        expect([...endIds].sort((a, b) => a - b)).toEqual(starts);
        for (const id of starts) {
          expect(log.indexOf(ends[endIds.indexOf(id)])).toBeGreaterThan(log.findIndex((l) => l.startsWith(`start ${id} `)));
        }
        expect(ends.sort()).toEqual([...backend.expected.values()].sort());
        expect(t.pending).toBe(0);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('backend scanner', () => {
  const messageArb = fc.record({ type: fc.integer({ min: 0x20, max: 0x7e }), payload: fc.uint8Array({ maxLength: 300 }) });
  const WANTED = new Set([0x43, 0x45, 0x5a, 0x49, 0x73, 0x47]);

  it('hands over exactly the wanted messages, whole, however the stream is cut', () => {
    fc.assert(
      fc.property(fc.array(messageArb, { maxLength: 30 }), fc.array(fc.nat(), { maxLength: 20 }), (messages, cuts) => {
        const frames = messages.map(({ type, payload }) => {
          const b = Buffer.alloc(5 + payload.length);
          b[0] = type;
          b.writeInt32BE(4 + payload.length, 1);
          Buffer.from(payload).copy(b, 5);
          return b;
        });
        const stream = Buffer.concat(frames);
        const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
        const seen: { type: number; payload: string }[] = [];
        const scanner = new BackendScanner(
          (type) => WANTED.has(type),
          (type, payload) => seen.push({ type, payload: Buffer.from(payload).toString('hex') }),
        );
        let prev = 0;
        let boundaries = 0;
        const frameEnds = new Set(frames.reduce<number[]>((acc, f) => [...acc, (acc[acc.length - 1] ?? 0) + f.length], [0]));
        for (const p of [...points, stream.length]) {
          scanner.scan(stream.subarray(prev, p));
          expect(scanner.atBoundary()).toBe(frameEnds.has(p));
          if (scanner.atBoundary()) boundaries++;
          prev = p;
        }
        expect(boundaries).toBeGreaterThan(0);
        expect(seen).toEqual(messages.filter((m) => WANTED.has(m.type)).map((m) => ({ type: m.type, payload: Buffer.from(m.payload).toString('hex') })));
      }),
      { numRuns: 1000 },
    );
  });

  it('refuses a length below 4', () => {
    const scanner = new BackendScanner(
      () => true,
      () => undefined,
    );
    expect(() => scanner.scan(Buffer.from([0x5a, 0, 0, 0, 3]))).toThrow(RangeError);
  });
});

describe('the guard rule on statement starts', () => {
  it('carries the rule of a simple query, and of the Parse a portal was bound from', () => {
    const t = new StatementTracker({ redactTypeOids: new Set(), maxParamChars: 100 });
    expect(t.query('select 1', 'sluice-grants')).toMatchObject({ text: 'select 1', rule: 'sluice-grants' });
    t.parse('s1', 'delete from t', [], 'no-deletes');
    t.bind('', 's1', [], []);
    // Reusing the name after Bind does not change what the bound portal records.
    t.parse('', 'select 2', [], 'sluice-grants');
    expect(t.execute('')).toMatchObject({ text: 'delete from t', statementName: 's1', rule: 'no-deletes' });
    t.bind('p', '', [], []);
    expect(t.execute('p')).toMatchObject({ text: 'select 2', rule: 'sluice-grants' });
    t.parse('plain', 'select 3', []);
    t.bind('q', 'plain', [], []);
    expect(t.execute('q')).not.toHaveProperty('rule');
  });
});
