import { AUTH, BE } from './message-types.js';
import { FrameWriter, cstringBytes } from './frame-writer.js';

/** Messages Sluice sends to clients, as it were the server. */

export function authenticationOk(): Buffer {
  return new FrameWriter(BE.Authentication, 4).int32(AUTH.Ok).done();
}

export function authenticationCleartextPassword(): Buffer {
  return new FrameWriter(BE.Authentication, 4).int32(AUTH.CleartextPassword).done();
}

export function parameterStatus(name: string, value: string): Buffer {
  const n = text(name);
  const v = text(value);
  return new FrameWriter(BE.ParameterStatus, cstringBytes(n) + cstringBytes(v)).cstring(n).cstring(v).done();
}

export function backendKeyData(pid: number, secret: number): Buffer {
  return new FrameWriter(BE.BackendKeyData, 8).uint32(pid).uint32(secret).done();
}

export function readyForQuery(status: 'I' | 'T' | 'E'): Buffer {
  return new FrameWriter(BE.ReadyForQuery, 1).byte(status.charCodeAt(0)).done();
}

export interface ErrorFields {
  severity: 'ERROR' | 'FATAL';
  /** SQLSTATE, five characters. */
  code: string;
  message: string;
  detail?: string;
  hint?: string;
}

export interface NoticeFields {
  severity: 'NOTICE' | 'WARNING';
  code: string;
  message: string;
  detail?: string;
  hint?: string;
}

export function errorResponse(f: ErrorFields): Buffer {
  return fieldsMessage(BE.ErrorResponse, f);
}

export function noticeResponse(f: NoticeFields): Buffer {
  return fieldsMessage(BE.NoticeResponse, f);
}

function fieldsMessage(type: number, f: ErrorFields | NoticeFields): Buffer {
  const fields: [string, string][] = [
    ['S', f.severity],
    ['V', f.severity],
    ['C', f.code],
    ['M', f.message],
  ];
  if (f.detail !== undefined) fields.push(['D', f.detail]);
  if (f.hint !== undefined) fields.push(['H', f.hint]);
  return fieldListMessage(type, fields);
}

/** An ErrorResponse or NoticeResponse from fields in order (code character, value). */
export function fieldListMessage(type: number, fields: readonly (readonly [string, string])[]): Buffer {
  let size = 1;
  for (const [, v] of fields) size += 1 + cstringBytes(text(v));
  const w = new FrameWriter(type, size);
  for (const [code, v] of fields) w.byte(code.charCodeAt(0)).cstring(text(v));
  return w.byte(0).done();
}

export function notificationResponse(pid: number, channel: string, payload: string): Buffer {
  return new FrameWriter(BE.NotificationResponse, 4 + cstringBytes(text(channel)) + cstringBytes(text(payload)))
    .int32(pid)
    .cstring(text(channel))
    .cstring(text(payload))
    .done();
}

export function commandComplete(tag: string): Buffer {
  const t = text(tag);
  return new FrameWriter(BE.CommandComplete, cstringBytes(t)).cstring(t).done();
}

export function emptyQueryResponse(): Buffer {
  return new FrameWriter(BE.EmptyQueryResponse, 0).done();
}

/** A NUL would end the field early and desynchronise the client, so text sent to clients never carries one. */
function text(s: string): string {
  return s.includes('\0') ? s.replaceAll('\0', '\uFFFD') : s;
}
