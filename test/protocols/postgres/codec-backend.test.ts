import { describe, expect, it } from 'vitest';
import { Parser } from 'pg-protocol/dist/parser.js';
import type { BackendMessage } from 'pg-protocol/dist/messages.js';
import { ProtocolError } from '../../../src/protocols/postgres/codec/errors.js';
import { AUTH, BE } from '../../../src/protocols/postgres/codec/message-types.js';
import {
  parseAuthentication,
  parseBackendKeyData,
  parseCommandComplete,
  parseErrorFields,
  parseParameterStatus,
  parseReadyForQuery,
  parseRowDescription,
} from '../../../src/protocols/postgres/codec/backend-parser.js';
import {
  authenticationCleartextPassword,
  authenticationOk,
  backendKeyData,
  commandComplete,
  emptyQueryResponse,
  errorResponse,
  noticeResponse,
  parameterStatus,
  readyForQuery,
} from '../../../src/protocols/postgres/codec/backend-serializer.js';

function payloadOf(msg: Buffer): Buffer {
  return msg.subarray(5);
}

/** What pg (an independent client) makes of the bytes. */
function pgParse(...msgs: Buffer[]): BackendMessage[] {
  const out: BackendMessage[] = [];
  new Parser().parse(Buffer.concat(msgs), (m) => out.push(m));
  return out;
}

function int32(...values: number[]): Buffer {
  const b = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => b.writeInt32BE(v, i * 4));
  return b;
}

function expectProtocolError(fn: () => unknown): void {
  expect(fn).toThrow(ProtocolError);
}

function rowDescription(fields: Array<{ name: string; tableOid: number; columnAttr: number; typeOid: number; typeSize: number; typeMod: number; format: number }>): Buffer {
  const parts: Buffer[] = [Buffer.from([fields.length >> 8, fields.length & 0xff])];
  for (const f of fields) {
    const b = Buffer.alloc(18);
    b.writeUInt32BE(f.tableOid, 0);
    b.writeInt16BE(f.columnAttr, 4);
    b.writeUInt32BE(f.typeOid, 6);
    b.writeInt16BE(f.typeSize, 10);
    b.writeInt32BE(f.typeMod, 12);
    b.writeInt16BE(f.format, 16);
    parts.push(Buffer.from(f.name + '\0'), b);
  }
  const body = Buffer.concat(parts);
  return Buffer.concat([Buffer.from([BE.RowDescription]), int32(body.length + 4), body]);
}

describe('backend serializer, read back by our parser and by pg', () => {
  it('authentication requests', () => {
    expect(parseAuthentication(payloadOf(authenticationOk()))).toEqual({ code: AUTH.Ok });
    expect(parseAuthentication(payloadOf(authenticationCleartextPassword()))).toEqual({ code: AUTH.CleartextPassword });
    expect(pgParse(authenticationOk(), authenticationCleartextPassword()).map((m) => m.name)).toEqual([
      'authenticationOk',
      'authenticationCleartextPassword',
    ]);
  });

  it('ParameterStatus, BackendKeyData, ReadyForQuery', () => {
    expect(parseParameterStatus(payloadOf(parameterStatus('server_version', '15.8 (Sluice)')))).toEqual(['server_version', '15.8 (Sluice)']);
    expect(parseBackendKeyData(payloadOf(backendKeyData(31337, 0xfedcba98)))).toEqual({ pid: 31337, secret: 0xfedcba98 });
    expect(parseBackendKeyData(payloadOf(backendKeyData(1, -2)))).toEqual({ pid: 1, secret: 0xfffffffe });
    for (const s of ['I', 'T', 'E'] as const) expect(parseReadyForQuery(payloadOf(readyForQuery(s)))).toBe(s);
    const [ps, key, rfq] = pgParse(parameterStatus('TimeZone', 'UTC'), backendKeyData(7, 9), readyForQuery('T')) as unknown as Array<Record<string, unknown>>;
    expect(ps).toMatchObject({ parameterName: 'TimeZone', parameterValue: 'UTC' });
    expect(key).toMatchObject({ processID: 7, secretKey: 9 });
    expect(rfq).toMatchObject({ status: 'T' });
  });

  it('ErrorResponse carries S, V, C, M and the optional D and H', () => {
    const msg = errorResponse({ severity: 'FATAL', code: '28000', message: 'token expired', detail: 'exp was 5 minutes ago', hint: 'run sluice login' });
    expect(msg[0]).toBe(BE.ErrorResponse);
    expect(parseErrorFields(payloadOf(msg))).toEqual({
      S: 'FATAL',
      V: 'FATAL',
      C: '28000',
      M: 'token expired',
      D: 'exp was 5 minutes ago',
      H: 'run sluice login',
    });
    const [e] = pgParse(msg) as unknown as Array<Record<string, unknown>>;
    expect(e).toMatchObject({ severity: 'FATAL', code: '28000', message: 'token expired', detail: 'exp was 5 minutes ago', hint: 'run sluice login' });
    expect(parseErrorFields(payloadOf(errorResponse({ severity: 'ERROR', code: '42501', message: 'denied' })))).toEqual({
      S: 'ERROR',
      V: 'ERROR',
      C: '42501',
      M: 'denied',
    });
  });

  it('NoticeResponse has the notice type byte', () => {
    const msg = noticeResponse({ severity: 'WARNING', code: '01000', message: 'statement held for approval' });
    expect(msg[0]).toBe(BE.NoticeResponse);
    expect(parseErrorFields(payloadOf(msg))).toMatchObject({ S: 'WARNING', M: 'statement held for approval' });
    expect(pgParse(msg)[0]).toMatchObject({ name: 'notice', message: 'statement held for approval' });
  });

  it('replaces NUL in text so a message cannot end early', () => {
    const msg = errorResponse({ severity: 'ERROR', code: '42501', message: 'no\0C\0' });
    expect(parseErrorFields(payloadOf(msg)).M).toBe('no\uFFFDC\uFFFD');
    expect(parseCommandComplete(payloadOf(commandComplete('SELECT\0 1')))).toBe('SELECT\uFFFD 1');
  });

  it('CommandComplete and EmptyQueryResponse', () => {
    expect(parseCommandComplete(payloadOf(commandComplete('SELECT 100')))).toBe('SELECT 100');
    expect(emptyQueryResponse().equals(Buffer.from([BE.EmptyQueryResponse, 0, 0, 0, 4]))).toBe(true);
    expect(pgParse(commandComplete('INSERT 0 1'), emptyQueryResponse()).map((m) => m.name)).toEqual(['commandComplete', 'emptyQuery']);
  });
});

describe('backend parser', () => {
  it('reads MD5 and SASL requests', () => {
    expect(parseAuthentication(Buffer.concat([int32(5), Buffer.from([1, 2, 3, 4])]))).toEqual({ code: 5, salt: Buffer.from([1, 2, 3, 4]) });
    expect(parseAuthentication(Buffer.concat([int32(10), Buffer.from('SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0')]))).toEqual({
      code: 10,
      mechanisms: ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256'],
    });
    expect(parseAuthentication(Buffer.concat([int32(11), Buffer.from('r=abc,s=xyz,i=4096')])).data!.toString()).toBe('r=abc,s=xyz,i=4096');
    expect(parseAuthentication(Buffer.concat([int32(12), Buffer.from('v=sig')])).data!.toString()).toBe('v=sig');
    expect(parseAuthentication(int32(7))).toEqual({ code: 7 });
  });

  it('reads RowDescription with unsigned OIDs and signed sizes', () => {
    const fields = [
      { name: 'id', tableOid: 16385, columnAttr: 1, typeOid: 23, typeSize: 4, typeMod: -1, format: 0 },
      { name: 'nämé', tableOid: 0xfffffff0, columnAttr: 0, typeOid: 25, typeSize: -1, typeMod: -1, format: 1 },
    ];
    expect(parseRowDescription(payloadOf(rowDescription(fields)))).toEqual(fields);
    expect(parseRowDescription(payloadOf(rowDescription([])))).toEqual([]);
  });

  it.each([
    ['Authentication empty', () => parseAuthentication(Buffer.alloc(0))],
    ['Authentication unknown code', () => parseAuthentication(int32(99))],
    ['AuthenticationOk with trailing bytes', () => parseAuthentication(int32(0, 0))],
    ['MD5 with a short salt', () => parseAuthentication(Buffer.concat([int32(5), Buffer.from([1, 2])]))],
    ['SASL list unterminated', () => parseAuthentication(Buffer.concat([int32(10), Buffer.from('SCRAM-SHA-256\0')]))],
    ['ErrorResponse without terminator', () => parseErrorFields(Buffer.from('SERROR\0'))],
    ['ErrorResponse field without NUL', () => parseErrorFields(Buffer.from('Mmessage'))],
    ['ErrorResponse with trailing bytes', () => parseErrorFields(Buffer.from('SERROR\0\0x'))],
    ['CommandComplete without NUL', () => parseCommandComplete(Buffer.from('SELECT 1'))],
    ['ReadyForQuery empty', () => parseReadyForQuery(Buffer.alloc(0))],
    ['ReadyForQuery unknown status', () => parseReadyForQuery(Buffer.from('X'))],
    ['ReadyForQuery too long', () => parseReadyForQuery(Buffer.from('II'))],
    ['ParameterStatus missing value', () => parseParameterStatus(Buffer.from('a\0'))],
    ['BackendKeyData short', () => parseBackendKeyData(Buffer.alloc(7))],
    ['BackendKeyData long', () => parseBackendKeyData(Buffer.alloc(9))],
    ['RowDescription count beyond payload', () => parseRowDescription(Buffer.from([0xff, 0xff]))],
    ['RowDescription empty', () => parseRowDescription(Buffer.alloc(0))],
  ])('refuses %s', (_name, fn) => expectProtocolError(fn));

  it('refuses every truncation of a RowDescription and an ErrorResponse', () => {
    const rd = payloadOf(rowDescription([{ name: 'a', tableOid: 1, columnAttr: 1, typeOid: 23, typeSize: 4, typeMod: -1, format: 0 }]));
    const er = payloadOf(errorResponse({ severity: 'ERROR', code: '42P01', message: 'relation does not exist' }));
    for (const [p, parse] of [
      [rd, parseRowDescription],
      [er, parseErrorFields],
    ] as const) {
      for (let n = 0; n < p.length; n++) expectProtocolError(() => parse(p.subarray(0, n)));
    }
  });
});
