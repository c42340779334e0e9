import { ProtocolError } from './errors.js';
import { REQUEST_CODE } from './message-types.js';
import { PayloadCursor } from './payload-cursor.js';

/** Parsers for the messages clients send. Each takes a payload (after the length) and throws only ProtocolError. */

export type StartupPacket =
  | { kind: 'ssl' }
  | { kind: 'gssenc' }
  | { kind: 'cancel'; pid: number; secret: number }
  | { kind: 'startup'; protocol: number; params: Array<[string, string]> };

/** Payload of the first untyped packet (see FrameReader.nextStartup). */
export function parseStartupPacket(payload: Buffer): StartupPacket {
  const c = new PayloadCursor(payload, 'startup', 'startup_malformed');
  const code = c.int32();
  switch (code) {
    case REQUEST_CODE.SSL:
      c.end();
      return { kind: 'ssl' };
    case REQUEST_CODE.GSSENC:
      c.end();
      return { kind: 'gssenc' };
    case REQUEST_CODE.Cancel: {
      const pid = c.uint32();
      const secret = c.uint32();
      c.end();
      return { kind: 'cancel', pid, secret };
    }
    case REQUEST_CODE.Protocol3:
      return { kind: 'startup', protocol: code, params: startupParams(c) };
    default: {
      const major = code >>> 16;
      const minor = code & 0xffff;
      throw new ProtocolError(
        'protocol_unsupported',
        `unsupported frontend protocol ${major}.${minor}: Sluice supports protocol 3.0 only; use a client that speaks it (libpq, pg, JDBC all do)`,
      );
    }
  }
}

/** Key/value pairs ending with an empty key; duplicates are kept so the caller can refuse them. */
function startupParams(c: PayloadCursor): Array<[string, string]> {
  const params: Array<[string, string]> = [];
  for (;;) {
    const key = c.cstring();
    if (key === '') break;
    params.push([key, c.cstring()]);
  }
  c.end();
  return params;
}

/** PasswordMessage in reply to AuthenticationCleartextPassword. */
export function parsePassword(payload: Buffer): string {
  return singleString(payload, 'password');
}

export function parseQuery(payload: Buffer): string {
  return singleString(payload, 'Query');
}

function singleString(payload: Buffer, what: string): string {
  const c = new PayloadCursor(payload, what);
  const s = c.cstring();
  c.end();
  return s;
}

export function parseParse(payload: Buffer): { name: string; query: string; paramTypes: number[] } {
  const c = new PayloadCursor(payload, 'Parse');
  const name = c.cstring();
  const query = c.cstring();
  const n = c.uint16();
  if (c.remaining !== n * 4) c.fail(`declares ${n} parameter types but carries ${c.remaining} bytes`);
  const paramTypes = new Array<number>(n);
  for (let i = 0; i < n; i++) paramTypes[i] = c.uint32();
  return { name, query, paramTypes };
}

export function parseBind(payload: Buffer): {
  portal: string;
  statement: string;
  paramFormats: number[];
  params: (Buffer | null)[];
  resultFormats: number[];
} {
  const c = new PayloadCursor(payload, 'Bind');
  const portal = c.cstring();
  const statement = c.cstring();
  const paramFormats = int16List(c);
  const n = c.uint16();
  if (c.remaining < n * 4) c.fail(`declares ${n} parameters but carries ${c.remaining} bytes`);
  const params = new Array<Buffer | null>(n);
  for (let i = 0; i < n; i++) {
    const len = c.int32();
    if (len === -1) params[i] = null;
    else if (len < 0) c.fail(`parameter ${i + 1} has length ${len}`);
    else params[i] = c.bytes(len);
  }
  const resultFormats = int16List(c);
  c.end();
  return { portal, statement, paramFormats, params, resultFormats };
}

function int16List(c: PayloadCursor): number[] {
  const n = c.uint16();
  if (c.remaining < n * 2) c.fail(`declares ${n} format codes but carries ${c.remaining} bytes`);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) out[i] = c.int16();
  return out;
}

export function parseExecute(payload: Buffer): { portal: string; maxRows: number } {
  const c = new PayloadCursor(payload, 'Execute');
  const portal = c.cstring();
  const maxRows = c.int32();
  c.end();
  return { portal, maxRows };
}

/** Describe and Close share one layout: 'S' (statement) or 'P' (portal), then a name. */
export function parseDescribeOrClose(payload: Buffer): { target: 'S' | 'P'; name: string } {
  const c = new PayloadCursor(payload, 'Describe/Close');
  const t = c.byte();
  if (t !== 0x53 && t !== 0x50) c.fail(`target must be 'S' or 'P', got 0x${t.toString(16)}`);
  const name = c.cstring();
  c.end();
  return { target: t === 0x53 ? 'S' : 'P', name };
}
