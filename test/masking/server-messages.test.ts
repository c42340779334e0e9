import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import pg from 'pg';
import { testPostgres } from '../support/pg-env.js';
import { MASKED_TEXT, maskNotificationPayload, maskServerFields, type ErrorField, type MessageMasking } from '../../src/masking/server-messages.js';
import { REDACTED } from '../../src/masking/strategies.js';

const env = testPostgres();
const key = randomBytes(32);
const plain: MessageMasking = { key };
const detecting: MessageMasking = { key, detectors: { names: new Set(['email']), spec: { strategy: 'redact' } } };

/** PostgreSQL's field codes for what pg exposes on an error or notice. */
const FIELDS: [string, string][] = [
  ['S', 'severity'],
  ['C', 'code'],
  ['M', 'message'],
  ['D', 'detail'],
  ['H', 'hint'],
  ['W', 'where'],
  ['q', 'internalQuery'],
  ['s', 'schema'],
  ['t', 'table'],
  ['c', 'column'],
  ['n', 'constraint'],
  ['d', 'dataType'],
];

function fieldsOf(err: unknown): ErrorField[] {
  const e = err as Record<string, unknown>;
  return FIELDS.filter(([, prop]) => typeof e[prop] === 'string' && e[prop] !== '').map(([code, prop]) => [code, e[prop] as string]);
}

function field(fields: readonly ErrorField[], code: string): string | undefined {
  return fields.find(([c]) => c === code)?.[1];
}

let client: pg.Client;
const notices: unknown[] = [];

async function failure(sql: string): Promise<ErrorField[]> {
  try {
    await client.query(sql);
  } catch (err) {
    expect(err).toBeInstanceOf(pg.DatabaseError);
    return fieldsOf(err);
  }
  throw new Error(`expected ${sql} to fail`);
}

beforeAll(async () => {
  client = new pg.Client({ host: env.host, port: env.port, user: env.superuser.user, password: env.superuser.password, database: env.database });
  client.on('notice', (n) => notices.push(n));
  await client.connect();
  await client.query(`
    CREATE TEMP TABLE people (id int PRIMARY KEY, email text UNIQUE, name text NOT NULL);
    CREATE TEMP TABLE orders (id int, person int REFERENCES people (id));
    CREATE TEMP TABLE codes (v text CHECK (length(v) < 5));
    CREATE TYPE pg_temp.mood AS ENUM ('happy', 'sad');
    INSERT INTO people VALUES (1, 'alice@example.com', 'Alice');
  `);
});

afterAll(async () => {
  await client.end();
});

describe('maskServerFields on real PostgreSQL errors', () => {
  const cases: { name: string; sql: string; secret: string; code: string; wording: RegExp }[] = [
    {
      name: 'unique violation detail',
      sql: "INSERT INTO people VALUES (2, 'alice@example.com', 'Al')",
      secret: 'alice@example.com',
      code: '23505',
      wording: /^duplicate key value violates unique constraint "people_email_key"$/,
    },
    {
      name: 'not-null violation row',
      sql: "INSERT INTO people VALUES (3, 'carol.secret@example.com', NULL)",
      secret: 'carol.secret',
      code: '23502',
      wording: /^null value in column "name" of relation "people" violates not-null constraint$/,
    },
    {
      name: 'foreign key detail',
      sql: 'INSERT INTO orders VALUES (1, 424242)',
      secret: '424242',
      code: '23503',
      wording: /^insert or update on table "orders" violates foreign key constraint "orders_person_fkey"$/,
    },
    {
      name: 'invalid integer',
      sql: "SELECT 'bob.secret@example.com'::int",
      secret: 'bob.secret',
      code: '22P02',
      wording: /^invalid input syntax for type integer: "\[masked\]"$/,
    },
    {
      name: 'invalid uuid',
      sql: "SELECT 'hunter2-not-a-uuid'::uuid",
      secret: 'hunter2',
      code: '22P02',
      wording: /^invalid input syntax for type uuid: "\[masked\]"$/,
    },
    {
      name: 'invalid json',
      sql: `SELECT '{"password": hunter2secret}'::json`,
      secret: 'hunter2secret',
      code: '22P02',
      wording: /^invalid input syntax for type json$/,
    },
    {
      name: 'invalid enum value',
      sql: "SELECT 'furious-topsecret'::pg_temp.mood",
      secret: 'topsecret',
      code: '22P02',
      wording: /^invalid input value for enum mood: "\[masked\]"$/,
    },
    {
      name: 'value out of range',
      sql: "SELECT '98765432109'::int",
      secret: '98765432109',
      code: '22003',
      wording: /^value "\[masked\]" is out of range for type integer$/,
    },
    {
      name: 'check constraint row',
      sql: "INSERT INTO codes VALUES ('longsecretcode')",
      secret: 'longsecretcode',
      code: '23514',
      wording: /^new row for relation "codes" violates check constraint "codes_v_check"$/,
    },
    {
      name: 'RAISE EXCEPTION with values',
      sql: `DO $$ BEGIN RAISE EXCEPTION 'lookup of % failed', 'dave.secret@example.com' USING DETAIL = 'row dave.secret', HINT = 'try dave.secret'; END $$`,
      secret: 'dave.secret',
      code: 'P0001',
      wording: new RegExp(`^${MASKED_TEXT.replace(/[[\]:]/g, '\\$&')}$`),
    },
  ];

  it.each(cases)('masks the value in a $name and keeps the SQLSTATE and wording', async ({ sql, secret, code, wording }) => {
    const raw = await failure(sql);
    expect(raw.map(([, v]) => v).join('\n')).toContain(secret);
    for (const m of [plain, detecting]) {
      const masked = maskServerFields(raw, m);
      expect(masked).not.toBe(raw);
      for (const [c, v] of masked) expect(v, `field ${c}`).not.toContain(secret);
      expect(field(masked, 'C')).toBe(code);
      expect(field(masked, 'S')).toBe(field(raw, 'S'));
      expect(field(masked, 'M')).toMatch(wording);
      expect(masked.map(([c]) => c)).toEqual(raw.map(([c]) => c));
      for (const c of ['t', 'c', 'n', 's', 'd']) expect(field(masked, c)).toBe(field(raw, c));
    }
  });

  it('masks every part of a RAISE EXCEPTION, including where it was raised', async () => {
    const raw = await failure(`DO $$ BEGIN RAISE EXCEPTION 'x %', 'erin.secret' USING DETAIL = 'd', HINT = 'h'; END $$`);
    expect(field(raw, 'W')).toMatch(/PL\/pgSQL function/);
    const masked = maskServerFields(raw, plain);
    for (const c of ['M', 'D', 'H', 'W']) expect(field(masked, c), c).toBe(MASKED_TEXT);
  });

  it('masks a RAISE NOTICE with a value, keeping severity and SQLSTATE', async () => {
    notices.length = 0;
    await client.query(`DO $$ BEGIN RAISE NOTICE 'saw %', 'frank.secret@example.com'; END $$`);
    expect(notices).toHaveLength(1);
    const raw = fieldsOf(notices[0]);
    expect(field(raw, 'M')).toContain('frank.secret');
    expect(field(raw, 'W')).toMatch(/PL\/pgSQL function/);
    for (const m of [plain, detecting]) {
      const masked = maskServerFields(raw, m);
      expect(field(masked, 'S')).toBe('NOTICE');
      expect(field(masked, 'C')).toBe('00000');
      expect(field(masked, 'M')).toBe(MASKED_TEXT);
      for (const [, v] of masked) expect(v).not.toContain('frank.secret');
    }
  });

  it('masks a RAISE WARNING with a custom SQLSTATE', async () => {
    notices.length = 0;
    await client.query(`DO $$ BEGIN RAISE WARNING USING MESSAGE = 'token grace.secret', ERRCODE = '01XYZ'; END $$`);
    const masked = maskServerFields(fieldsOf(notices[0]), plain);
    expect(field(masked, 'C')).toBe('01XYZ');
    expect(field(masked, 'S')).toBe('WARNING');
    for (const [, v] of masked) expect(v).not.toContain('grace.secret');
  });

  it('masks every text field of errors from a statement that computes over masked columns', async () => {
    for (const sql of [
      "SELECT to_date('alice@example.com', 'YYYY')",
      "SELECT 'alicesecret'::regclass",
      "SELECT convert_to('x', 'alicesecret')",
      "SELECT set_config('alicesecret', 'x', false)",
      "SELECT xmlparse(document 'alicesecret<')",
    ]) {
      const fields = await failure(sql);
      const out = maskServerFields(fields, plain, true);
      expect(JSON.stringify(out)).not.toMatch(/alic/);
      expect(field(out, 'C')).toBe(field(fields, 'C'));
    }
  });

  it('returns the same fields when nothing in them can carry a value', async () => {
    const raw = await failure('SELECT * FROM no_such_table_here');
    expect(field(raw, 'C')).toBe('42P01');
    expect(maskServerFields(raw, plain)).toBe(raw);
    expect(maskServerFields(raw, detecting)).toBe(raw);
  });

  it('runs detectors over messages that do not quote a value', () => {
    const raw: ErrorField[] = [
      ['S', 'ERROR'],
      ['C', 'XX000'],
      ['M', 'could not process henry@example.com'],
    ];
    expect(maskServerFields(raw, plain)).toBe(raw);
    const masked = maskServerFields(raw, detecting);
    expect(field(masked, 'M')).not.toContain('henry@example.com');
    expect(field(masked, 'M')).toMatch(/^could not process /);
  });

  it('never lets a quoted value through, whatever it holds (property)', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1 }), fc.constantFrom('integer', 'uuid', 'bigint', 'boolean'), (value, type) => {
        const secret = `S${value}`;
        const raw: ErrorField[] = [
          ['C', '22P02'],
          ['M', `invalid input syntax for type ${type}: "${secret}"`],
          ['D', `Key (email)=(${secret}) already exists.`],
        ];
        const masked = maskServerFields(raw, plain);
        return field(masked, 'M') === `invalid input syntax for type ${type}: "${REDACTED}"` && field(masked, 'D') === MASKED_TEXT && field(masked, 'C') === '22P02';
      }),
    );
  });
});

describe('maskNotificationPayload', () => {
  it('redacts payloads whole, or detects within them', async () => {
    const listener = new pg.Client({ host: env.host, port: env.port, user: env.superuser.user, password: env.superuser.password, database: env.database });
    await listener.connect();
    try {
      const got = new Promise<string>((resolve) => listener.on('notification', (n) => resolve(n.payload ?? '')));
      await listener.query('LISTEN sluice_masking_test');
      await client.query(`SELECT pg_notify('sluice_masking_test', 'user ivy@example.com changed')`);
      const payload = await got;
      expect(payload).toBe('user ivy@example.com changed');
      expect(maskNotificationPayload(payload, 'redact', detecting)).toBe(REDACTED);
      const detected = maskNotificationPayload(payload, 'detect', detecting);
      expect(detected).not.toContain('ivy@example.com');
      expect(detected).toMatch(/^user .* changed$/);
      // Detect mode with no detectors configured would pass payloads raw: they are redacted instead.
      expect(maskNotificationPayload(payload, 'detect', plain)).toBe(REDACTED);
      expect(maskNotificationPayload('', 'redact', plain)).toBe('');
    } finally {
      await listener.end();
    }
  });
});
