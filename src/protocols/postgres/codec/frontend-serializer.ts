import { ProtocolError } from './errors.js';
import { FE, REQUEST_CODE } from './message-types.js';
import { FrameWriter, cstringBytes } from './frame-writer.js';

/** Messages Sluice sends to a PostgreSQL server, as a client. */

export function startupMessage(params: Record<string, string>): Buffer {
  const entries = Object.entries(params);
  let size = 4 + 1;
  for (const [k, v] of entries) {
    if (k === '') throw new ProtocolError('value_invalid', 'a startup parameter name must not be empty');
    size += cstringBytes(noNul(k, 'startup parameter name')) + cstringBytes(noNul(v, `startup parameter "${k}"`));
  }
  const w = new FrameWriter(null, size).int32(REQUEST_CODE.Protocol3);
  for (const [k, v] of entries) w.cstring(k).cstring(v);
  return w.byte(0).done();
}

export function sslRequest(): Buffer {
  return new FrameWriter(null, 4).int32(REQUEST_CODE.SSL).done();
}

export function cancelRequest(pid: number, secret: number): Buffer {
  return new FrameWriter(null, 12).int32(REQUEST_CODE.Cancel).uint32(pid).uint32(secret).done();
}

export function passwordMessage(pw: string): Buffer {
  noNul(pw, 'password');
  return new FrameWriter(FE.Password, cstringBytes(pw)).cstring(pw).done();
}

export function saslInitialResponse(mechanism: string, data: Buffer): Buffer {
  noNul(mechanism, 'SASL mechanism');
  return new FrameWriter(FE.Password, cstringBytes(mechanism) + 4 + data.length).cstring(mechanism).int32(data.length).bytes(data).done();
}

export function saslResponse(data: Buffer): Buffer {
  return new FrameWriter(FE.Password, data.length).bytes(data).done();
}

export function query(sql: string): Buffer {
  noNul(sql, 'query');
  return new FrameWriter(FE.Query, cstringBytes(sql)).cstring(sql).done();
}

export function terminate(): Buffer {
  return new FrameWriter(FE.Terminate, 0).done();
}

/**
 * The server reads these as NUL-terminated strings: an embedded NUL would cut
 * the value short and let the rest be read as further parameters or
 * statements, so it is refused rather than sent.
 */
function noNul(s: string, what: string): string {
  if (s.includes('\0')) throw new ProtocolError('value_contains_nul', `${what} contains a NUL character, which the PostgreSQL protocol cannot carry`);
  return s;
}

export function copyFail(reason: string): Buffer {
  return new FrameWriter(FE.CopyFail, cstringBytes(reason)).cstring(reason).done();
}
