import { BE } from '../codec/message-types.js';
import { FrameReader } from '../codec/frame-reader.js';
import { parseErrorFields, parseParameterStatus, parseRowDescription } from '../codec/backend-parser.js';
import { copyFail, query } from '../codec/frontend-serializer.js';
import { PayloadCursor } from '../codec/payload-cursor.js';
import { ProtocolError } from '../codec/errors.js';
import type { BackendConnection } from './connect.js';
import { BackendError } from './errors.js';
import { socketStep } from './socket-step.js';

export interface QueryResult {
  readonly fields: string[];
  readonly rows: (string | null)[][];
}

export const DEFAULT_QUERY_TIMEOUT_MS = 30_000;

/** Catalog rows carry whole view definitions; PostgreSQL itself caps a value at 1 GB. */
const MAX_MESSAGE_BYTES = 256 * 1024 * 1024;

const COPY_REFUSED = 'Sluice runs only row-returning internal queries; COPY is not supported here';

/**
 * Runs one simple-protocol Query on an idle BackendConnection and resolves
 * after ReadyForQuery with the last result set that had a RowDescription
 * (a query string of several statements runs as one implicit transaction).
 * Rejects with a BackendError carrying the server's SQLSTATE when the server
 * sent an ErrorResponse; the connection stays usable then. A timeout, a
 * closed connection or a protocol violation destroys the socket, since its
 * state is unknown. Text results only. Leaves the socket paused with no
 * listeners, and bytes that arrived after ReadyForQuery in `conn.pending`.
 */
export async function simpleQuery(conn: BackendConnection, sql: string, timeoutMs = DEFAULT_QUERY_TIMEOUT_MS): Promise<QueryResult> {
  const message = query(sql);
  const who = describe(conn);
  const reader = new FrameReader({ maxMessageBytes: MAX_MESSAGE_BYTES, maxStartupBytes: MAX_MESSAGE_BYTES });
  reader.push(conn.pending);
  conn.pending = Buffer.alloc(0);

  let current: { fields: string[]; rows: (string | null)[][] } | undefined;
  let last: QueryResult | undefined;
  let serverError: BackendError | undefined;
  let copyOut = false;

  /** True on ReadyForQuery. */
  const handle = (type: number, payload: Buffer): boolean => {
    switch (type) {
      case BE.RowDescription:
        current = { fields: parseRowDescription(payload).map((f) => f.name), rows: [] };
        return false;
      case BE.DataRow:
        if (!current) throw new ProtocolError('frame_malformed', 'DataRow without a RowDescription');
        current.rows.push(parseDataRow(payload, current.fields.length));
        return false;
      case BE.CommandComplete:
        if (current) last = current;
        current = undefined;
        return false;
      case BE.EmptyQueryResponse:
      case BE.NoticeResponse:
      case BE.NotificationResponse:
        return false;
      case BE.ParameterStatus: {
        const [name, value] = parseParameterStatus(payload);
        conn.parameters.set(name, value);
        return false;
      }
      case BE.ErrorResponse:
        serverError ??= fromErrorResponse(who, parseErrorFields(payload));
        current = undefined;
        return false;
      case BE.CopyInResponse:
        conn.socket.write(copyFail(COPY_REFUSED));
        return false;
      case BE.CopyOutResponse:
        copyOut = true;
        return false;
      case BE.CopyData:
      case BE.CopyDone:
        if (!copyOut) throw new ProtocolError('frame_malformed', 'CopyData outside COPY');
        if (type === BE.CopyDone) {
          copyOut = false;
          serverError ??= new BackendError('backend_protocol', `${who}: ${COPY_REFUSED}`, '0A000');
        }
        return false;
      case BE.ReadyForQuery:
        return true;
      default:
        throw new ProtocolError('frame_malformed', `unexpected message type 0x${type.toString(16)} in a simple query response`);
    }
  };

  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), timeoutMs);
  try {
    const step = socketStep<void>(conn.socket, abort.signal, {
      data: (chunk, ok, fail) => {
        reader.push(chunk);
        try {
          for (let frame = reader.next(); frame; frame = reader.next()) {
            if (handle(frame.type, frame.payload)) {
              conn.pending = reader.drain();
              return ok();
            }
          }
        } catch (err) {
          fail(err instanceof ProtocolError ? new BackendError('backend_protocol', `${who} sent an invalid message: ${err.message}`, '08P01', { cause: err }) : err);
        }
      },
      // A FATAL ErrorResponse is followed by the close: report the server's reason.
      closed: () => serverError ?? new BackendError('backend_unreachable', `${who} closed the connection during a query`, '08006'),
      failed: (err) => new BackendError('backend_unreachable', `connection to ${who} failed during a query: ${err.message}`, '08006', { cause: err }),
      timedOut: () =>
        new BackendError('backend_timeout', `${who} did not answer a query within ${timeoutMs} ms; check that the server is not overloaded or blocked on a lock`, '57014'),
    });
    conn.socket.write(message);
    await step;
  } finally {
    clearTimeout(timer);
  }
  if (serverError) throw serverError;
  return last ?? { fields: [], rows: [] };
}

function parseDataRow(payload: Buffer, expected: number): (string | null)[] {
  const c = new PayloadCursor(payload, 'DataRow', 'frame_malformed', false);
  const n = c.uint16();
  if (n !== expected) c.fail(`carries ${n} columns, the RowDescription declared ${expected}`);
  const row = new Array<string | null>(n);
  for (let i = 0; i < n; i++) {
    const len = c.int32();
    row[i] = len === -1 ? null : c.bytes(len).toString('utf8');
  }
  c.end();
  return row;
}

function fromErrorResponse(who: string, fields: Record<string, string>): BackendError {
  const sqlstate = /^[0-9A-Z]{5}$/.test(fields.C ?? '') ? fields.C : 'XX000';
  return new BackendError('backend_rejected', `${who} rejected the query: ${fields.M ?? 'no message'}`, sqlstate, { fields });
}

function describe(conn: BackendConnection): string {
  const { remoteAddress, remotePort } = conn.socket;
  if (!remoteAddress) return 'PostgreSQL';
  return remoteAddress.includes(':') ? `PostgreSQL at [${remoteAddress}]:${remotePort}` : `PostgreSQL at ${remoteAddress}:${remotePort}`;
}
