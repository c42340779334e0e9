import { parseCommandComplete, parseErrorFields, parseReadyForQuery } from './codec/backend-parser.js';
import { ProtocolError } from './codec/errors.js';
import { FrameReader } from './codec/frame-reader.js';
import { BE } from './codec/message-types.js';
import { rowsOf } from './statement-tracker.js';

/** What the backend answered to one Query that Sluice sent on a session's own connection. */
export interface ExchangeResult {
  readonly tags: readonly string[];
  /** Rows the command tags count (DELETE 5, UPDATE 3, MERGE 2). */
  readonly rows: number;
  readonly error?: { readonly code: string; readonly message: string };
  readonly status: 'I' | 'T' | 'E';
  /** Every message up to and including ReadyForQuery; undefined when `keepBytes` was exceeded. */
  readonly raw?: Buffer;
}

interface Expectation {
  readonly keepBytes: number;
  readonly resolve: (r: ExchangeResult) => void;
  readonly reject: (err: unknown) => void;
  parts: Buffer[] | undefined;
  kept: number;
  tags: string[];
  rows: number;
  error?: { code: string; message: string };
}

/**
 * While Sluice talks to a session's backend itself (the savepoint around a
 * row-counted statement), backend bytes come here instead of going to the
 * client. Each expected Query is answered up to its ReadyForQuery;
 * notifications that arrive meanwhile are kept for the client, and anything
 * else asynchronous (notices, parameter status) is Sluice's own business.
 */
export class BackendExchange {
  private readonly reader: FrameReader;
  private readonly queue: Expectation[] = [];
  private readonly notifications: Buffer[] = [];

  constructor(maxMessageBytes: number) {
    this.reader = new FrameReader({ maxMessageBytes, maxStartupBytes: maxMessageBytes });
  }

  /** Registers the answer to the next Query sent; call before writing it. */
  expect(keepBytes = 0): Promise<ExchangeResult> {
    return new Promise((resolve, reject) => {
      this.queue.push({ keepBytes, resolve, reject, parts: keepBytes > 0 ? [] : undefined, kept: 0, tags: [], rows: 0 });
    });
  }

  push(chunk: Buffer): void {
    try {
      this.reader.push(chunk);
      for (let f = this.reader.next(); f; f = this.reader.next()) {
        if (f.type === BE.NotificationResponse) {
          this.notifications.push(Buffer.from(f.raw));
          continue;
        }
        const e = this.queue[0];
        if (!e) continue;
        if (e.parts !== undefined) {
          e.kept += f.raw.length;
          if (e.kept > e.keepBytes) e.parts = undefined;
          else e.parts.push(Buffer.from(f.raw));
        }
        if (f.type === BE.CommandComplete) {
          const tag = parseCommandComplete(f.payload);
          e.tags.push(tag);
          e.rows += rowsOf(tag) ?? 0;
        } else if (f.type === BE.ErrorResponse) {
          const fields = parseErrorFields(f.payload);
          e.error ??= { code: fields.C ?? 'XX000', message: fields.M ?? '' };
        } else if (f.type === BE.ReadyForQuery) {
          this.queue.shift();
          e.resolve({ tags: e.tags, rows: e.rows, status: parseReadyForQuery(f.payload), ...(e.error ? { error: e.error } : {}), ...(e.parts ? { raw: Buffer.concat(e.parts) } : {}) });
        } else if (f.type === BE.CopyInResponse || f.type === BE.CopyOutResponse || f.type === BE.CopyBothResponse) {
          throw new ProtocolError('frame_unexpected', 'the backend started a COPY during a row count check');
        }
      }
    } catch (err) {
      this.fail(err);
    }
  }

  /** Fails every expectation: the connection closed or sent something unreadable. */
  fail(err: unknown): void {
    for (const e of this.queue.splice(0)) e.reject(err);
  }

  /** Ends the exchange: notifications that arrived meanwhile, then any bytes after the last answer, for the normal path. */
  finish(): Buffer {
    return Buffer.concat([...this.notifications, this.reader.drain()]);
  }
}
