import { AUTH } from './message-types.js';
import { PayloadCursor } from './payload-cursor.js';

/**
 * Parsers for the messages a PostgreSQL server sends. Each takes a payload
 * (after the length) and throws only ProtocolError. Server text is decoded
 * leniently: it is displayed or logged, never judged.
 */

function cursor(payload: Buffer, what: string): PayloadCursor {
  return new PayloadCursor(payload, what, 'frame_malformed', false);
}

export interface AuthenticationRequest {
  code: number;
  /** MD5Password: the 4-byte salt. */
  salt?: Buffer;
  /** SASL: the offered mechanisms. */
  mechanisms?: string[];
  /** SASLContinue, SASLFinal, GSSContinue: the mechanism data. */
  data?: Buffer;
}

export function parseAuthentication(payload: Buffer): AuthenticationRequest {
  const c = cursor(payload, 'Authentication');
  const code = c.int32();
  switch (code) {
    case AUTH.MD5Password: {
      const salt = c.bytes(4);
      c.end();
      return { code, salt };
    }
    case AUTH.SASL: {
      const mechanisms: string[] = [];
      for (;;) {
        const m = c.cstring();
        if (m === '') break;
        mechanisms.push(m);
      }
      c.end();
      return { code, mechanisms };
    }
    case AUTH.SASLContinue:
    case AUTH.SASLFinal:
    case AUTH.GSSContinue:
      return { code, data: c.rest() };
    case AUTH.Ok:
    case AUTH.CleartextPassword:
    case AUTH.KerberosV5:
    case AUTH.GSS:
    case AUTH.SSPI:
      c.end();
      return { code };
    default:
      return c.fail(`unknown authentication request ${code}`);
  }
}

/** ErrorResponse / NoticeResponse: field code character → value. */
export function parseErrorFields(payload: Buffer): Record<string, string> {
  return Object.fromEntries(parseErrorFieldList(payload));
}

/** ErrorResponse / NoticeResponse fields in the order the server sent them, for rewriting the message. */
export function parseErrorFieldList(payload: Buffer): [code: string, value: string][] {
  const c = cursor(payload, 'ErrorResponse');
  const fields: [string, string][] = [];
  for (let code = c.byte(); code !== 0; code = c.byte()) fields.push([String.fromCharCode(code), c.cstring()]);
  c.end();
  return fields;
}

export function parseNotification(payload: Buffer): { pid: number; channel: string; payload: string } {
  const c = cursor(payload, 'NotificationResponse');
  const pid = c.int32();
  const channel = c.cstring();
  const text = c.cstring();
  c.end();
  return { pid, channel, payload: text };
}

export function parseCommandComplete(payload: Buffer): string {
  const c = cursor(payload, 'CommandComplete');
  const tag = c.cstring();
  c.end();
  return tag;
}

export function parseReadyForQuery(payload: Buffer): 'I' | 'T' | 'E' {
  const c = cursor(payload, 'ReadyForQuery');
  const s = c.byte();
  c.end();
  if (s === 0x49) return 'I';
  if (s === 0x54) return 'T';
  if (s === 0x45) return 'E';
  return c.fail(`unknown transaction status 0x${s.toString(16)}`);
}

export function parseParameterStatus(payload: Buffer): [string, string] {
  const c = cursor(payload, 'ParameterStatus');
  const name = c.cstring();
  const value = c.cstring();
  c.end();
  return [name, value];
}

/** Protocol 3.0 keys: pid and secret read as unsigned, matching the cancel codec. */
export function parseBackendKeyData(payload: Buffer): { pid: number; secret: number } {
  const c = cursor(payload, 'BackendKeyData');
  const pid = c.uint32();
  const secret = c.uint32();
  c.end();
  return { pid, secret };
}

export interface FieldDescription {
  name: string;
  /** OID of the source table, 0 when the column is not a plain table column. */
  tableOid: number;
  /** Attribute number within the source table, 0 when none. */
  columnAttr: number;
  typeOid: number;
  typeSize: number;
  typeMod: number;
  /** 0 text, 1 binary. */
  format: number;
}

export function parseRowDescription(payload: Buffer): FieldDescription[] {
  const c = cursor(payload, 'RowDescription');
  const n = c.uint16();
  // Each field takes at least 19 bytes; refusing early keeps a hostile count from allocating.
  if (c.remaining < n * 19) c.fail(`declares ${n} fields but carries ${c.remaining} bytes`);
  const fields = new Array<FieldDescription>(n);
  for (let i = 0; i < n; i++) {
    fields[i] = {
      name: c.cstring(),
      tableOid: c.uint32(),
      columnAttr: c.int16(),
      typeOid: c.uint32(),
      typeSize: c.int16(),
      typeMod: c.int32(),
      format: c.int16(),
    };
  }
  c.end();
  return fields;
}
