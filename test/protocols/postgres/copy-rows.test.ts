import fc from 'fast-check';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BINARY_HEADER,
  BINARY_TRAILER,
  CopyFormatError,
  CopyRowMasker,
  CSV_DEFAULTS,
  encodeCopyRow,
  KEEP,
  TEXT_DEFAULTS,
  type CopyFormat,
  type FieldMasker,
} from '../../../src/protocols/postgres/masking/copy-rows.js';
import { testPostgres } from '../../support/pg-env.js';

/**
 * COPY streams come from the real server one CopyData message at a time
 * (through a pg Submittable, so the framing is exactly the server's), and
 * masked streams are fed back to the server's own COPY FROM parser.
 */
interface RawConnection {
  query(text: string): void;
  sendCopyFromChunk(chunk: Buffer): void;
  endCopyFrom(): void;
}

class CopyQuery {
  readonly chunks: Buffer[] = [];
  private error?: Error;
  readonly done: Promise<Buffer[]>;
  private settle!: (err: Error | undefined) => void;
  constructor(
    private readonly text: string,
    private readonly input: Buffer[] = [],
  ) {
    this.done = new Promise((resolveDone, reject) => {
      this.settle = (err) => (err ? reject(err) : resolveDone(this.chunks));
    });
  }
  submit(connection: RawConnection): void {
    connection.query(this.text);
  }
  handleCopyData(msg: { chunk: Buffer }): void {
    this.chunks.push(Buffer.from(msg.chunk));
  }
  handleCopyInResponse(connection: RawConnection): void {
    for (const c of this.input) connection.sendCopyFromChunk(c);
    connection.endCopyFrom();
  }
  handleError(err: Error): void {
    this.error = err;
  }
  handleReadyForQuery(): void {
    this.settle(this.error);
  }
  handleCommandComplete(): void {}
  handleRowDescription(): void {}
  handleDataRow(): void {}
  handleEmptyQuery(): void {}
}

let client: pg.Client;

async function copyOut(sql: string): Promise<Buffer[]> {
  return client.query(new CopyQuery(sql) as unknown as pg.Submittable & CopyQuery).done;
}
async function copyIn(sql: string, chunks: Buffer[]): Promise<void> {
  await client.query(new CopyQuery(sql, chunks) as unknown as pg.Submittable & CopyQuery).done;
}

const TRICKY = [
  'plain',
  'tab\there',
  'new\nline',
  'cr\rreturn\r\n',
  'back\\slash\\',
  '"quoted" \'single\'',
  'comma,semi;colon|pipe',
  'héllo ✓ 😀 日本',
  '',
  '\\N',
  'NULL',
  '\\.',
  'ctl\x01\x08\x0b\x0c\x1f',
  '\\x41\\101',
  ' leading and trailing ',
];

interface Src {
  id: number;
  t: string | null;
  b: Buffer | null;
  n: number | null;
  u: string | null;
}

const ROWS: Src[] = TRICKY.map((t, i) => ({
  id: i + 1,
  t,
  b: i % 4 === 3 ? null : Buffer.from(Array.from({ length: 8 + i * 17 }, (_, k) => (k * 37 + i) & 0xff)),
  n: i % 5 === 2 ? null : (i - 7) * 1_000_003,
  u: i % 3 === 1 ? null : TRICKY[(i + 5) % TRICKY.length],
}));
const COLUMNS = 'id int, t text, b bytea, n int, u text';

/** The values of the columns, in order, as the masker sees them in text/csv (bytea in hex output). */
function textValues(r: Src): (string | null)[] {
  return [String(r.id), r.t, r.b === null ? null : `\\x${r.b.toString('hex')}`, r.n === null ? null : String(r.n), r.u];
}

const FORMATS: { name: string; format: Exclude<CopyFormat, { kind: 'binary' }>; options: string }[] = [
  { name: 'text defaults', format: TEXT_DEFAULTS, options: '' },
  { name: 'text with delimiter, NULL and HEADER', format: { kind: 'text', delimiter: '|', null: 'NULL', header: true }, options: "(FORMAT text, DELIMITER '|', NULL 'NULL', HEADER)" },
  { name: 'csv with HEADER', format: { ...CSV_DEFAULTS, header: true }, options: '(FORMAT csv, HEADER)' },
  {
    name: 'csv with custom delimiter, quote, escape and NULL',
    format: { kind: 'csv', delimiter: ';', quote: "'", escape: '\\', null: 'NULL', header: false },
    options: "(FORMAT csv, DELIMITER ';', QUOTE '''', ESCAPE '\\', NULL 'NULL')",
  },
  { name: 'csv with FORCE_QUOTE *', format: { ...CSV_DEFAULTS, header: true }, options: '(FORMAT csv, HEADER, FORCE_QUOTE *)' },
];

const collect = (sink: (Buffer | null)[][]): FieldMasker => {
  return (index, value) => {
    if (index === 0) sink.push([]);
    sink[sink.length - 1].push(value === null ? null : Buffer.from(value));
    return KEEP;
  };
};

beforeAll(async () => {
  const env = testPostgres();
  client = new pg.Client({ host: env.host, port: env.port, user: env.superuser.user, password: env.superuser.password, database: env.database });
  await client.connect();
  await client.query(`CREATE TEMP TABLE src (${COLUMNS})`);
  for (const r of ROWS) await client.query('INSERT INTO src VALUES ($1, $2, $3, $4, $5)', [r.id, r.t, r.b, r.n, r.u]);
});

afterAll(async () => {
  await client?.end();
});

describe('COPY rows from the real server', () => {
  for (const { name, format, options } of FORMATS) {
    describe(name, () => {
      it('passes every message through as the same Buffer when every field is KEEP, decoding each value exactly', async () => {
        const chunks = await copyOut(`COPY (SELECT * FROM src ORDER BY id) TO STDOUT ${options}`);
        expect(chunks.length).toBe(ROWS.length + (format.header ? 1 : 0));
        const seen: (Buffer | null)[][] = [];
        const m = new CopyRowMasker(format, collect(seen));
        for (const c of chunks) expect(m.row(c)).toBe(c);
        // PostgreSQL writes a text value that needs no escaping and equals the NULL marker as is, so every reader (the server too) sees NULL.
        const needsEscape = (v: string): boolean => /[\\\x00-\x1f]/.test(v) || v.includes(format.delimiter);
        const asRead = (v: string | null): string | null => (format.kind === 'text' && v === format.null && !needsEscape(v) ? null : v);
        expect(seen.map((r) => r.map((v) => (v === null ? null : v.toString('utf8'))))).toEqual(ROWS.map((r) => textValues(r).map(asRead)));
      });

      it('masks chosen fields so that the server reads back exactly the replacements', async () => {
        const chunks = await copyOut(`COPY (SELECT * FROM src ORDER BY id) TO STDOUT ${options}`);
        const replacement = (id: string): string => `m${id}\t|;,'"\\\n\r${format.null}é`;
        let id = '';
        const m = new CopyRowMasker(format, (index, value) => {
          if (index === 0) id = value!.toString();
          if (index === 1) return Buffer.from(replacement(id));
          if (index === 2) return null;
          // An empty string and a value spelling the NULL marker must stay values.
          if (index === 4) return Buffer.from(Number(id) % 2 ? '' : format.null);
          return KEEP;
        });
        const masked = chunks.map((c) => m.row(c));
        await client.query('DROP TABLE IF EXISTS dst');
        await client.query(`CREATE TEMP TABLE dst (${COLUMNS})`);
        await copyIn(`COPY dst FROM STDIN ${options.replace(', FORCE_QUOTE *', '')}`, masked);
        const back = await client.query<Src>('SELECT * FROM dst ORDER BY id');
        expect(back.rows).toEqual(
          ROWS.map((r) => ({
            id: r.id,
            t: replacement(String(r.id)),
            b: null,
            n: r.n,
            u: r.id % 2 ? '' : format.null,
          })),
        );
      });
    });
  }

  it('binary: passes the header, tuples and trailer through untouched and masks raw field bytes', async () => {
    const chunks = await copyOut('COPY (SELECT * FROM src ORDER BY id) TO STDOUT (FORMAT binary)');
    expect(chunks.length).toBe(ROWS.length + 1);
    const seen: (Buffer | null)[][] = [];
    const keep = new CopyRowMasker({ kind: 'binary' }, collect(seen));
    for (const c of chunks) expect(keep.row(c)).toBe(c);
    expect(seen.map((r) => [r[0]!.readInt32BE(0), r[1]?.toString('utf8') ?? null, r[2], r[3]?.readInt32BE(0) ?? null, r[4]?.toString('utf8') ?? null])).toEqual(
      ROWS.map((r) => [r.id, r.t, r.b, r.n, r.u]),
    );

    const n = Buffer.alloc(4);
    n.writeInt32BE(-42);
    const mask = new CopyRowMasker({ kind: 'binary' }, (index) => {
      if (index === 1) return Buffer.from('[masked]\n\t"');
      if (index === 2) return Buffer.from([0, 1, 2, 255]);
      if (index === 3) return n;
      if (index === 4) return null;
      return KEEP;
    });
    const masked = chunks.map((c) => mask.row(c));
    await client.query('DROP TABLE IF EXISTS dst');
    await client.query(`CREATE TEMP TABLE dst (${COLUMNS})`);
    await copyIn('COPY dst FROM STDIN (FORMAT binary)', masked);
    const back = await client.query<Src>('SELECT * FROM dst ORDER BY id');
    expect(back.rows).toEqual(ROWS.map((r) => ({ id: r.id, t: '[masked]\n\t"', b: Buffer.from([0, 1, 2, 255]), n: -42, u: null })));
  });

  it('binary: an empty result carries the header in the trailer message', async () => {
    const chunks = await copyOut('COPY (SELECT * FROM src WHERE false) TO STDOUT (FORMAT binary)');
    expect(chunks).toEqual([Buffer.concat([BINARY_HEADER, BINARY_TRAILER])]);
    const m = new CopyRowMasker({ kind: 'binary' }, () => null);
    expect(m.row(chunks[0])).toBe(chunks[0]);
  });

  it('csv: a quoted field holding newlines stays one row', async () => {
    const chunks = await copyOut(`COPY (SELECT 'a' || chr(10) || 'b,"c"' AS x, 'y' AS y) TO STDOUT (FORMAT csv)`);
    expect(chunks).toEqual([Buffer.from('"a\nb,""c""",y\n')]);
    const seen: (Buffer | null)[][] = [];
    new CopyRowMasker(CSV_DEFAULTS, collect(seen)).row(chunks[0]);
    expect(seen).toEqual([[Buffer.from('a\nb,"c"'), Buffer.from('y')]]);
  });
});

describe('malformed COPY data', () => {
  const bad: { name: string; format: CopyFormat; payloads: Buffer[] }[] = [
    { name: 'text row without newline', format: TEXT_DEFAULTS, payloads: [Buffer.from('a\tb')] },
    { name: 'text trailing backslash', format: TEXT_DEFAULTS, payloads: [Buffer.from('a\tb\\')] },
    { name: 'text end-of-data marker', format: TEXT_DEFAULTS, payloads: [Buffer.from('a\t\\.\n')] },
    { name: 'text raw carriage return', format: TEXT_DEFAULTS, payloads: [Buffer.from('a\rb\n')] },
    { name: 'text empty payload', format: TEXT_DEFAULTS, payloads: [Buffer.alloc(0)] },
    { name: 'text field count changes', format: TEXT_DEFAULTS, payloads: [Buffer.from('a\tb\n'), Buffer.from('a\tb\tc\n')] },
    { name: 'text row split across messages', format: TEXT_DEFAULTS, payloads: [Buffer.from('a\tb\nc')] },
    { name: 'csv unterminated quote', format: CSV_DEFAULTS, payloads: [Buffer.from('"a\nb,c\n')] },
    { name: 'csv unquoted carriage return', format: CSV_DEFAULTS, payloads: [Buffer.from('a\r\n')] },
    { name: 'csv row without newline', format: CSV_DEFAULTS, payloads: [Buffer.from('a,"b"')] },
    { name: 'csv field count changes', format: CSV_DEFAULTS, payloads: [Buffer.from('a,"b,c"\n'), Buffer.from('a,b,c\n')] },
    { name: 'binary bad signature', format: { kind: 'binary' }, payloads: [Buffer.concat([Buffer.from('PGCOPY\n\xff\r\n\x01', 'latin1'), Buffer.alloc(8)])] },
    { name: 'binary short header', format: { kind: 'binary' }, payloads: [BINARY_HEADER.subarray(0, 15)] },
    { name: 'binary critical flag', format: { kind: 'binary' }, payloads: [withInt32(BINARY_HEADER, 11, 1 << 17)] },
    { name: 'binary header extension past the end', format: { kind: 'binary' }, payloads: [withInt32(BINARY_HEADER, 15, 4)] },
    { name: 'binary negative extension', format: { kind: 'binary' }, payloads: [withInt32(BINARY_HEADER, 15, -1)] },
    { name: 'binary truncated field count', format: { kind: 'binary' }, payloads: [Buffer.concat([BINARY_HEADER, Buffer.from([0])])] },
    { name: 'binary truncated length', format: { kind: 'binary' }, payloads: [Buffer.concat([BINARY_HEADER, Buffer.from([0, 1, 0, 0])])] },
    { name: 'binary field past the end', format: { kind: 'binary' }, payloads: [Buffer.concat([BINARY_HEADER, Buffer.from([0, 1, 0, 0, 0, 5, 1, 2])])] },
    { name: 'binary length below -1', format: { kind: 'binary' }, payloads: [Buffer.concat([BINARY_HEADER, Buffer.from([0, 1, 0xff, 0xff, 0xff, 0xfe])])] },
    { name: 'binary negative field count', format: { kind: 'binary' }, payloads: [Buffer.concat([BINARY_HEADER, Buffer.from([0xff, 0xfe])])] },
    { name: 'binary data after trailer', format: { kind: 'binary' }, payloads: [Buffer.concat([BINARY_HEADER, BINARY_TRAILER, Buffer.from([0])])] },
    { name: 'binary message after trailer', format: { kind: 'binary' }, payloads: [Buffer.concat([BINARY_HEADER, BINARY_TRAILER]), BINARY_TRAILER] },
    {
      name: 'binary field count changes',
      format: { kind: 'binary' },
      payloads: [Buffer.concat([BINARY_HEADER, encodeCopyRow({ kind: 'binary' }, [null])]), encodeCopyRow({ kind: 'binary' }, [null, null])],
    },
  ];
  for (const { name, format, payloads } of bad) {
    it(`refuses ${name}`, () => {
      const m = new CopyRowMasker(format, () => KEEP);
      const run = (): void => {
        for (const p of payloads) m.row(p);
      };
      expect(run).toThrow(CopyFormatError);
      try {
        run();
      } catch (err) {
        expect((err as CopyFormatError).code).toBe('copy_format');
      }
    });
  }

  it('refuses COPY options it cannot parse safely', () => {
    const bad: CopyFormat[] = [
      { kind: 'text', delimiter: '\\', null: '\\N' },
      { kind: 'text', delimiter: 'ab', null: '\\N' },
      { kind: 'text', delimiter: 'n', null: '\\N' },
      { kind: 'text', delimiter: '|', null: 'a|b' },
      { kind: 'csv', delimiter: ',', quote: ',', escape: '"', null: '', header: false },
      { kind: 'csv', delimiter: ',', quote: '"', escape: '"', null: '"', header: false },
      { kind: 'csv', delimiter: '\n', quote: '"', escape: '"', null: '', header: false },
      { kind: 'csv', delimiter: 'é', quote: '"', escape: '"', null: '', header: false },
    ];
    for (const f of bad) expect(() => new CopyRowMasker(f, () => KEEP)).toThrow(CopyFormatError);
  });
});

describe('round trips (property-based)', () => {
  const SPECIAL = [0x09, 0x0a, 0x0d, 0x5c, 0x22, 0x27, 0x2c, 0x3b, 0x7c, 0x2e, 0x4e, 0x78, 0x30, 0x37, 0x08, 0x0b, 0x0c, 0x00, 0xff, 0x41];
  const byte = fc.oneof(fc.constantFrom(...SPECIAL), fc.integer({ min: 0, max: 255 }));
  const value = fc.oneof(
    fc.uint8Array({ maxLength: 12 }).map((a) => Buffer.from(a)),
    fc.array(byte, { maxLength: 12 }).map((a) => Buffer.from(a)),
    fc.constantFrom('', '\\N', 'NULL', '\\.', '""', '\\').map((s) => Buffer.from(s)),
  );
  const field = fc.option(value, { freq: 5 });
  const textFormat = fc.record({
    kind: fc.constant('text' as const),
    delimiter: fc.constantFrom('\t', '|', ',', ';', '\x01', 'X'),
    null: fc.constantFrom('\\N', 'NULL', '', 'X'),
    header: fc.boolean(),
  }).filter((f) => !f.null.includes(f.delimiter));
  const csvFormat = fc
    .record({
      kind: fc.constant('csv' as const),
      delimiter: fc.constantFrom(',', ';', '\t', '|'),
      quote: fc.constantFrom('"', "'", '|'),
      escape: fc.constantFrom('"', "'", '\\', '|'),
      null: fc.constantFrom('', 'NULL', '\\N'),
      header: fc.boolean(),
    })
    .filter((f) => f.quote !== f.delimiter && !f.null.includes(f.quote));
  const format: fc.Arbitrary<CopyFormat> = fc.oneof(textFormat, csvFormat, fc.constant({ kind: 'binary' } as const));
  const decision = fc.oneof(fc.constant<typeof KEEP>(KEEP), fc.constant(null), value);

  /** Text format cannot tell the empty string from NULL '' (PostgreSQL cannot either). */
  const representable = (f: CopyFormat, v: Buffer | null): Buffer | null =>
    f.kind === 'text' && f.null === '' && v !== null && v.length === 0 ? null : v;

  function stream(f: CopyFormat, rows: (Buffer | null)[][]): Buffer[] {
    const out = rows.map((r) => encodeCopyRow(f, r));
    if (f.kind === 'binary') return [Buffer.concat([BINARY_HEADER, out[0]]), ...out.slice(1), BINARY_TRAILER];
    if (f.header) return [encodeCopyRow(f, rows[0].map((_, i) => Buffer.from(`col${i}`))), ...out];
    return out;
  }

  function parse(f: CopyFormat, payloads: Buffer[]): (Buffer | null)[][] {
    const seen: (Buffer | null)[][] = [];
    const m = new CopyRowMasker(f, collect(seen));
    for (const p of payloads) expect(m.row(p)).toBe(p);
    return seen;
  }

  it('parse(encode(rows)) gives the rows back, and masking changes exactly the chosen fields', () => {
    fc.assert(
      fc.property(
        format,
        fc.integer({ min: 1, max: 5 }).chain((width) =>
          fc.array(fc.array(fc.tuple(field, decision), { minLength: width, maxLength: width }), { minLength: 1, maxLength: 4 }),
        ),
        (f, table) => {
          const rows = table.map((r) => r.map(([v]) => v));
          const payloads = stream(f, rows);
          expect(parse(f, payloads)).toEqual(rows.map((r) => r.map((v) => representable(f, v))));

          let row = -1;
          const masker = new CopyRowMasker(f, (index) => {
            if (index === 0) row++;
            return table[row][index][1];
          });
          const masked = payloads.map((p) => masker.row(p));
          const expected = table.map((r) => r.map(([v, d]) => representable(f, d === KEEP ? v : d)));
          expect(parse(f, masked)).toEqual(expected);
          payloads.forEach((p, i) => {
            const dataRow = f.kind !== 'binary' && f.header ? i - 1 : i;
            const untouched = dataRow < 0 || dataRow >= table.length || table[dataRow].every(([v, d]) => d === KEEP || (d === null && v === null));
            if (untouched) expect(masked[i]).toBe(p);
          });
        },
      ),
      { numRuns: 3000 },
    );
  });

  it('several complete rows in one payload parse like separate messages', () => {
    fc.assert(
      fc.property(
        fc.oneof(textFormat, csvFormat),
        fc.integer({ min: 1, max: 4 }).chain((w) => fc.array(fc.array(field, { minLength: w, maxLength: w }), { minLength: 1, maxLength: 4 })),
        (f, rows) => {
          const payloads = stream(f, rows);
          expect(parse(f, [Buffer.concat(payloads)])).toEqual(parse(f, payloads));
        },
      ),
    );
  });

  it('never throws anything but CopyFormatError on arbitrary bytes', () => {
    fc.assert(
      fc.property(format, fc.array(fc.uint8Array({ maxLength: 40 }), { minLength: 1, maxLength: 4 }), fc.boolean(), (f, chunks, withHeader) => {
        const m = new CopyRowMasker(f, (i, v) => (i % 2 ? null : (v ?? KEEP)));
        try {
          chunks.forEach((c, i) => m.row(i === 0 && withHeader && f.kind === 'binary' ? Buffer.concat([BINARY_HEADER, c]) : Buffer.from(c)));
        } catch (err) {
          expect(err).toBeInstanceOf(CopyFormatError);
        }
      }),
      { numRuns: 2000 },
    );
  });
});

function withInt32(b: Buffer, offset: number, v: number): Buffer {
  const c = Buffer.from(b);
  c.writeInt32BE(v, offset);
  return c;
}
