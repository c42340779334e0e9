import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { DETECTOR_NAMES, findSensitive, maskDetected, type DetectorName } from '../../src/masking/detectors.js';
import { maskText, type StrategySpec } from '../../src/masking/strategies.js';

const all: ReadonlySet<DetectorName> = new Set(DETECTOR_NAMES);
const key = Buffer.from('detector-test-key');

function b64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}
const JWT = `${b64url({ alg: 'HS256', typ: 'JWT' })}.${b64url({ sub: 'alice', exp: 1700000000 })}.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c`;

/** The substrings `detector` finds in `text`, checking the text with only that detector enabled. */
function hits(detector: DetectorName, text: string): string[] {
  return findSensitive(text, new Set([detector])).map((m) => {
    expect(m.detector).toBe(detector);
    return text.slice(m.start, m.end);
  });
}

function expectFound(detector: DetectorName, samples: readonly (readonly [string, string])[]): void {
  for (const [text, expected] of samples) expect(hits(detector, text), text).toEqual([expected]);
}

function expectNone(detector: DetectorName, samples: readonly string[]): void {
  for (const text of samples) expect(hits(detector, text), text).toEqual([]);
}

describe('email', () => {
  it('finds addresses', () => {
    expectFound('email', [
      ['contact john.doe@example.com today', 'john.doe@example.com'],
      ['<first.last+tag@mail.example.co.uk>', 'first.last+tag@mail.example.co.uk'],
      ['mailto:o\'brien@example.ie', "o'brien@example.ie"],
      ["'quoted@example.org'", 'quoted@example.org'],
      ['x_y-z%1@sub-domain.example.museum.', 'x_y-z%1@sub-domain.example.museum'],
      ['jürgen@münchen.de', 'jürgen@münchen.de'],
      ['a@b.co', 'a@b.co'],
      ['user@host.xn--p1ai', 'user@host.xn--p1ai'],
    ]);
  });

  it('ignores things that only look like addresses', () => {
    expectNone('email', [
      '@mention in a chat',
      'user@localhost',
      'icon@2x.png',
      'sprite@1.5x.webp',
      'lodash@4.17.21',
      'user@example.c',
      'a @ b.com',
      'user@-bad-.com',
      'Widget 42 blue',
    ]);
  });
});

describe('payment_card', () => {
  it('finds numbers that pass Luhn, plain or grouped', () => {
    expectFound('payment_card', [
      ['card 4111111111111111 on file', '4111111111111111'],
      ['4111 1111 1111 1111', '4111 1111 1111 1111'],
      ['mc 5500-0000-0000-0004.', '5500-0000-0000-0004'],
      ['amex 3782 822463 10005', '3782 822463 10005'],
      ['discover:6011000000000004', '6011000000000004'],
      ['visa13 4222222222222', '4222222222222'],
      ['order 12 4012 8888 8888 1881', '4012 8888 8888 1881'],
      ['x4111111111111111y', '4111111111111111'],
    ]);
  });

  it('ignores numbers that fail Luhn or are parts of other numbers', () => {
    expectNone('payment_card', [
      '4111111111111112',
      '5500 0000 0000 0005',
      '41111111111111111',
      '94111111111111111',
      'epoch ms 1700000000000 and ns 1700000000000000000',
      '3.4111111111111111',
      '4111111111111111.25',
      '4111 1111-1111 1111',
      '4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1',
      '123e4567-e89b-12d3-a456-426614174000',
      '411111111111',
    ]);
  });
});

describe('iban', () => {
  it('finds IBANs with a valid checksum, compact or printed', () => {
    expectFound('iban', [
      ['pay to GB82WEST12345698765432 please', 'GB82WEST12345698765432'],
      ['GB82 WEST 1234 5698 7654 32', 'GB82 WEST 1234 5698 7654 32'],
      ['DE89 3704 0044 0532 0130 00 is the account', 'DE89 3704 0044 0532 0130 00'],
      ['fr1420041010050500013m02606', 'fr1420041010050500013m02606'],
      ['NL91ABNA0417164300', 'NL91ABNA0417164300'],
      ['(CH9300762011623852957)', 'CH9300762011623852957'],
      ['GB33 BUKB 2020 1555 5555 55 next', 'GB33 BUKB 2020 1555 5555 55'],
    ]);
  });

  it('ignores bad checksums and other alphanumerics', () => {
    expectNone('iban', [
      'GB82WEST12345698765433',
      'DE89 3704 0044 0532 0130 01',
      'XGB82WEST12345698765432',
      'GB82WEST12345698765432X',
      'AB12CDEFGHIJKLMNOP',
      'order SKU12345678901234567',
      'GB82WEST1234',
    ]);
  });
});

describe('us_ssn', () => {
  it('finds valid social security numbers', () => {
    expectFound('us_ssn', [
      ['ssn 123-45-6789', '123-45-6789'],
      ['078-05-1120;', '078-05-1120'],
      ['SSN: 123 45 6789', '123 45 6789'],
      ['(899-99-9999)', '899-99-9999'],
      ['id=001-01-0001', '001-01-0001'],
      ['665-12-3456 end', '665-12-3456'],
    ]);
  });

  it('rejects invalid areas, groups, serials and longer numbers', () => {
    expectNone('us_ssn', [
      '000-12-3456',
      '666-12-3456',
      '900-12-3456',
      '999-12-3456',
      '123-00-4567',
      '123-45-0000',
      '1123-45-6789',
      '123-45-67890',
      '1-123-45-6789',
      '123-45-6789-1',
      '123-45 6789',
      '2024-01-15',
    ]);
  });
});

describe('phone', () => {
  it('finds E.164 and North-American numbers', () => {
    expectFound('phone', [
      ['call +1 (555) 123-4567 now', '+1 (555) 123-4567'],
      ['+14155552671', '+14155552671'],
      ['tel:+44 20 7946 0958', '+44 20 7946 0958'],
      ['+33.1.23.45.67.89', '+33.1.23.45.67.89'],
      ['office (555) 123-4567', '(555) 123-4567'],
      ['555-123-4567', '555-123-4567'],
      ['555.123.4567.', '555.123.4567'],
      ['1-800-555-0199', '1-800-555-0199'],
    ]);
  });

  it('ignores integers, dates, times, addresses, versions, ids and timestamps', () => {
    expectNone('phone', [
      '5551234567',
      '2024-01-15',
      '2024-01-15T10:30:00+01:00',
      '2024-01-15T10:30:00.123456+0000',
      '10:30:45.123',
      '192.168.100.200',
      '255.255.255.0 and 10.0.0.1',
      'v1.2.3 and 10.20.300',
      '123e4567-e89b-12d3-a456-426614174000',
      '550e8400-e29b-41d4-a716-446655440000',
      'total +1234567.89',
      '1e+10',
      'x+14155552671',
      '+0123456789',
      '555-123-45678',
      '555-123-4567-89',
      'v555.123.4567',
      '+1234567',
    ]);
  });
});

describe('jwt', () => {
  it('finds compact JWS and JWE tokens', () => {
    const none = `${b64url({ alg: 'none' })}.${b64url({ sub: 'x' })}.`;
    const jwe = `${b64url({ alg: 'RSA-OAEP', enc: 'A256GCM' })}.abcDEF123_-.iv012345.cipher-text_x.tag0123456`;
    expectFound('jwt', [
      [JWT, JWT],
      [`Authorization: Bearer ${JWT}`, JWT],
      [`"token":"${JWT}"`, JWT],
      [`${JWT}.`, JWT],
      [none, none],
      [jwe, jwe],
    ]);
  });

  it('ignores lookalikes', () => {
    expectNone('jwt', [
      'eyJhbGciOiJIUzI1NiJ9',
      'eyJhbGciOiJIUzI1NiJ9.',
      `x${JWT}`,
      'eyJub3QganNvbg.eyJzdWIiOiIxIn0.sig',
      'eyJ.eyJ.eyJ',
      `${b64url([1, 2, 3]).replace(/^WzEs/, 'eyJ')}.payload.sig`,
      'the eyJ prefix alone',
    ]);
  });
});

describe('aws_access_key', () => {
  it('finds access key ids as whole tokens', () => {
    expectFound('aws_access_key', [
      ['AKIAIOSFODNN7EXAMPLE', 'AKIAIOSFODNN7EXAMPLE'],
      ['key=ASIAY34FZKBOKMUTVV7A;', 'ASIAY34FZKBOKMUTVV7A'],
      ['"AROA1234567890ABCDEF"', 'AROA1234567890ABCDEF'],
      ['AIDAJQABLZS4A3QDU576 user', 'AIDAJQABLZS4A3QDU576'],
      ['AGPA0123456789ABCDEF', 'AGPA0123456789ABCDEF'],
      ['ANPA0123456789ABCDEF\n', 'ANPA0123456789ABCDEF'],
    ]);
  });

  it('ignores near misses', () => {
    expectNone('aws_access_key', [
      'AKIAIOSFODNN7EXAMPL',
      'AKIAIOSFODNN7EXAMPLEX',
      'XAKIAIOSFODNN7EXAMPLE',
      'AKIAiosfodnn7example',
      'ABCDIOSFODNN7EXAMPLE',
      'AKIA_IOSFODNN7EXAMPLE',
    ]);
  });
});

describe('private_key', () => {
  const body = 'MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7';

  it('finds PEM private keys and fails closed without an END line', () => {
    const rsa = `-----BEGIN RSA PRIVATE KEY-----\n${body}\n-----END RSA PRIVATE KEY-----`;
    const pkcs8 = `-----BEGIN PRIVATE KEY-----\r\n${body}\r\n-----END PRIVATE KEY-----`;
    const openssh = `-----BEGIN OPENSSH PRIVATE KEY-----\\n${body}\\n-----END OPENSSH PRIVATE KEY-----`;
    const truncated = `-----BEGIN EC PRIVATE KEY-----\n${body}\n-----END`;
    const pgp = `-----BEGIN PGP PRIVATE KEY BLOCK-----\n${body}\n-----END PGP PRIVATE KEY BLOCK-----`;
    expectFound('private_key', [
      [`key: ${rsa} trailing`, rsa],
      [pkcs8, pkcs8],
      [`{"k":"${openssh}"}`, openssh],
      [`x ${truncated}`, truncated],
      [pgp, pgp],
      [`-----BEGIN ENCRYPTED PRIVATE KEY-----${body}`, `-----BEGIN ENCRYPTED PRIVATE KEY-----${body}`],
    ]);
  });

  it('ignores public material', () => {
    expectNone('private_key', [
      `-----BEGIN PUBLIC KEY-----\n${body}\n-----END PUBLIC KEY-----`,
      `-----BEGIN CERTIFICATE-----\n${body}\n-----END CERTIFICATE-----`,
      `-----BEGIN RSA PUBLIC KEY-----\n${body}\n-----END RSA PUBLIC KEY-----`,
      'a PRIVATE KEY mentioned in prose, with no PEM armour around it',
      '-----BEGIN private key-----abc',
      '-----BEGIN OPENSSH PRIVATE KEY',
    ]);
  });
});

describe('api_key', () => {
  const a36 = 'aB3dE5fG7hJ9kL1mN2pQ4rS6tU8vW0xY2zA4';
  it('finds well-known prefixed tokens', () => {
    expectFound('api_key', [
      [`token ghp_${a36} ok`, `ghp_${a36}`],
      [`gho_${a36}`, `gho_${a36}`],
      ['github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz', 'github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz'],
      ['xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOp', 'xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOp'],
      ['sk_live_51H8abcDEFghiJKLmnoPQR', 'sk_live_51H8abcDEFghiJKLmnoPQR'],
      ['rk_live_abcdefgh12345678', 'rk_live_abcdefgh12345678'],
      ['key=AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q', 'AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q'],
      ['sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789', 'sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789'],
      [`npm_${a36}`, `npm_${a36}`],
      ['glpat-AbCdEfGh1234567890Xy', 'glpat-AbCdEfGh1234567890Xy'],
    ]);
  });

  it('ignores prefixes inside words, short bodies and slugs', () => {
    expectNone('api_key', [
      `xghp_${a36}`,
      `ghp_${a36}X`,
      'ghp_short',
      'sk_live_short',
      'task-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789',
      'sk-this-is-a-very-long-kebab-case-slug-for-the-docs',
      'xoxb-abcdefghijklmnop',
      'pk_live_51H8abcDEFghiJKLmnoPQR',
      'glpat-short',
    ]);
  });
});

describe('findSensitive', () => {
  it('returns nothing for short or plain values and when no detector is enabled', () => {
    expect(findSensitive('Widget 42 blue', all)).toEqual([]);
    expect(findSensitive('', all)).toEqual([]);
    expect(findSensitive('john.doe@example.com', new Set())).toEqual([]);
  });

  it('only runs the enabled detectors', () => {
    const text = 'john.doe@example.com 4111111111111111';
    expect(findSensitive(text, new Set(['payment_card'])).map((m) => m.detector)).toEqual(['payment_card']);
  });

  it('sorts matches and keeps the longer one on overlap', () => {
    const text = 'pay 4111 1111 1111 1111, mail a@b.co, call +1 555-123-4567';
    const found = findSensitive(text, all);
    expect(found.map((m) => [m.detector, text.slice(m.start, m.end)])).toEqual([
      ['payment_card', '4111 1111 1111 1111'],
      ['email', 'a@b.co'],
      ['phone', '+1 555-123-4567'],
    ]);
    for (let i = 1; i < found.length; i++) expect(found[i].start).toBeGreaterThanOrEqual(found[i - 1].end);
  });

  it('reports UTF-16 indices after astral characters', () => {
    const text = '😀😀 a@b.co';
    const [m] = findSensitive(text, all);
    expect(m).toEqual({ detector: 'email', start: 5, end: 11 });
  });
});

describe('maskDetected', () => {
  const text = 'Jane <jane@example.com> paid with 4111 1111 1111 1111 from +44 20 7946 0958.';

  it('redacts each match in place with its detector name', () => {
    expect(maskDetected(text, all, { strategy: 'redact' }, key)).toBe(
      'Jane <[masked:email]> paid with [masked:payment_card] from [masked:phone].',
    );
  });

  it('applies partial and hash to each matched substring only', () => {
    expect(maskDetected(text, all, { strategy: 'partial' }, key)).toBe('Jane <****.com> paid with ****1111 from ****0958.');
    const hashed = maskDetected(text, all, { strategy: 'hash' }, key);
    expect(hashed).toBe(
      `Jane <${maskText('jane@example.com', { strategy: 'hash' }, key)}> paid with ${maskText('4111 1111 1111 1111', { strategy: 'hash' }, key)} from ${maskText('+44 20 7946 0958', { strategy: 'hash' }, key)}.`,
    );
  });

  it('turns the whole value into null for strategy null when anything matched', () => {
    expect(maskDetected(text, all, { strategy: 'null' }, key)).toBeNull();
    expect(maskDetected('nothing here', all, { strategy: 'null' }, key)).toBe('nothing here');
  });

  it('returns the same instance when nothing matched', () => {
    const plain = ['Widget', ' 42 blue ', 'x'.repeat(40)].join('');
    expect(maskDetected(plain, all, { strategy: 'redact' }, key)).toBe(plain);
  });

  it('masks a match that only became visible once its neighbour was masked', () => {
    const tricky = '123-45-6789.4111111111111111';
    expect(maskDetected(tricky, all, { strategy: 'redact' }, key)).toBe('[masked:us_ssn].[masked:payment_card]');
  });
});

const sensitiveSamples = [
  'john.doe@example.com',
  'a@b.co',
  '4111 1111 1111 1111',
  '4111111111111111',
  '378282246310005',
  'GB82WEST12345698765432',
  'DE89 3704 0044 0532 0130 00',
  '123-45-6789',
  '+1 (555) 123-4567',
  '555.123.4567',
  JWT,
  'AKIAIOSFODNN7EXAMPLE',
  '-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----',
  '-----BEGIN RSA PRIVATE KEY-----',
  'ghp_aB3dE5fG7hJ9kL1mN2pQ4rS6tU8vW0xY2zA4',
  'sk_live_51H8abcDEFghiJKLmnoPQR',
];
const glue = ['', ' ', '.', '-', '@', '1', '+', 'x', '_', '(', ')', '\n', '😀', 'eyJ', '0.', ':'];

const mixedText = fc
  .array(fc.oneof(fc.constantFrom(...sensitiveSamples), fc.constantFrom(...glue), fc.string({ maxLength: 6 })), {
    maxLength: 12,
  })
  .map((parts) => parts.join(''));

const strategies: StrategySpec[] = [
  { strategy: 'redact' },
  { strategy: 'partial' },
  { strategy: 'partial', keepLast: 8 },
  { strategy: 'hash' },
];

describe('properties', () => {
  it('masked output contains nothing findSensitive would still report', () => {
    fc.assert(
      fc.property(mixedText, fc.constantFrom(...strategies), (text, spec) => {
        const masked = maskDetected(text, all, spec, key);
        expect(masked).not.toBeNull();
        expect(findSensitive(masked as string, all)).toEqual([]);
      }),
      { numRuns: 500 },
    );
  });

  it('masked output is clean for each single detector too', () => {
    fc.assert(
      fc.property(mixedText, fc.constantFrom(...DETECTOR_NAMES), (text, name) => {
        const enabled = new Set([name]);
        const masked = maskDetected(text, enabled, { strategy: 'partial' }, key) as string;
        expect(findSensitive(masked, enabled)).toEqual([]);
      }),
      { numRuns: 300 },
    );
  });

  it('text without any match comes back as the same instance', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 80 }), mixedText), (text) => {
        fc.pre(findSensitive(text, all).length === 0);
        expect(maskDetected(text, all, { strategy: 'hash' }, key)).toBe(text);
        expect(maskDetected(text, all, { strategy: 'null' }, key)).toBe(text);
      }),
      { numRuns: 300 },
    );
  });

  it('matches are sorted, disjoint and inside the text', () => {
    fc.assert(
      fc.property(mixedText, (text) => {
        const found = findSensitive(text, all);
        for (let i = 0; i < found.length; i++) {
          expect(found[i].start).toBeGreaterThanOrEqual(i === 0 ? 0 : found[i - 1].end);
          expect(found[i].end).toBeGreaterThan(found[i].start);
          expect(found[i].end).toBeLessThanOrEqual(text.length);
        }
      }),
    );
  });

  it('scans 20k-character random and adversarial inputs', () => {
    const adversarialUnit = fc.constantFrom('a', '1', ' ', '-', '.', '@', '+', '(', ')', 'e', 'y', 'J', '_', 'A', 'K', 'I', 'G', 'B', '8', '\n');
    fc.assert(
      fc.property(fc.string({ unit: adversarialUnit, minLength: 20_000, maxLength: 20_000 }), (text) => {
        const masked = maskDetected(text, all, { strategy: 'redact' }, key);
        expect(typeof masked).toBe('string');
      }),
      { numRuns: 10 },
    );
    fc.assert(
      fc.property(fc.string({ minLength: 20_000, maxLength: 20_000 }), (text) => {
        expect(Array.isArray(findSensitive(text, all))).toBe(true);
      }),
      { numRuns: 5 },
    );
    const handmade = [
      'a'.repeat(20_000) + '@',
      '@' + 'a.'.repeat(10_000),
      'a@'.repeat(10_000),
      '1 '.repeat(10_000),
      '1-'.repeat(10_000),
      '4'.repeat(20_000),
      '+1'.repeat(10_000),
      '(555) '.repeat(3_000),
      'eyJ'.repeat(7_000),
      'eyJhbGciOiJIUzI1NiJ9.'.repeat(1_000),
      '-----BEGIN '.repeat(2_000),
      '-----BEGIN PRIVATE KEY-----'.repeat(800),
      'github_pat_'.repeat(2_000),
      'sk-' + 'a-'.repeat(10_000),
      'GB82 '.repeat(4_000),
      'AKIA'.repeat(5_000),
    ];
    for (const text of handmade) {
      const found = findSensitive(text, all);
      expect(Array.isArray(found)).toBe(true);
    }
  });
});
