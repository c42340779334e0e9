import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { parseBackendKeyData, parseErrorFields } from '../../src/protocols/postgres/codec/backend-parser.js';
import { passwordMessage, sslRequest, startupMessage } from '../../src/protocols/postgres/codec/frontend-serializer.js';
import { AUTH, BE } from '../../src/protocols/postgres/codec/message-types.js';

/** One message from the server: the type as a character and the bytes after the length. */
export interface BackendMessage {
  readonly type: string;
  readonly payload: Buffer;
}

/** What `next` returns once the server has closed the connection and everything sent before was read. */
export const CLOSED = Symbol('closed');

/**
 * A PostgreSQL client that sends whatever bytes a test gives it and reads
 * the server's answers one message at a time, so tests can speak the
 * protocol wrongly on purpose. Messages are parsed as they arrive; `pause`
 * stops reading from the socket so the server meets backpressure.
 */
export class RawClient {
  private socket: Socket;
  private buf: Buffer = Buffer.alloc(0);
  private queue: BackendMessage[] = [];
  private head = 0;
  private ended = false;
  private waiter?: () => void;
  /** Set while the next bytes are one-byte SSLRequest/GSSENCRequest answers rather than messages. */
  private rawBytes = 0;

  private constructor(socket: Socket) {
    this.socket = socket;
    this.listen(socket);
  }

  static connect(host: string, port: number): Promise<RawClient> {
    return new Promise((resolveClient, reject) => {
      const s = netConnect({ host, port, noDelay: true });
      s.once('error', reject);
      s.once('connect', () => {
        s.removeListener('error', reject);
        resolveClient(new RawClient(s));
      });
    });
  }

  get destroyed(): boolean {
    return this.socket.destroyed;
  }

  write(bytes: Buffer | Uint8Array): void {
    if (!this.socket.destroyed) this.socket.write(bytes);
  }

  /** Reads one byte that is not framed as a message (the answer to SSLRequest or GSSENCRequest). */
  async readByte(timeoutMs = 5000): Promise<number | typeof CLOSED> {
    this.rawBytes++;
    const deadline = Date.now() + timeoutMs;
    try {
      for (;;) {
        if (this.buf.length > 0) {
          const b = this.buf[0];
          this.buf = this.buf.subarray(1);
          return b;
        }
        if (this.ended) return CLOSED;
        await this.wait(deadline, 'one byte');
      }
    } finally {
      this.rawBytes--;
    }
  }

  /** Sends SSLRequest, expects 'S' and completes the TLS handshake (certificate not verified: it is self-signed). */
  async startTls(extra?: Buffer): Promise<void> {
    this.write(extra ? Buffer.concat([sslRequest(), extra]) : sslRequest());
    const answer = await this.readByte();
    if (answer !== 0x53) throw new Error(`SSLRequest answered ${answer === CLOSED ? 'by closing' : String.fromCharCode(answer)}`);
    await this.upgrade();
  }

  /** Starts TLS on the connection without sending SSLRequest (after the caller has seen 'S'). */
  upgrade(): Promise<void> {
    const plain = this.socket;
    plain.removeAllListeners('data');
    plain.removeAllListeners('end');
    plain.removeAllListeners('close');
    return new Promise((resolveTls, reject) => {
      const s = tlsConnect({ socket: plain, rejectUnauthorized: false, servername: 'localhost' });
      s.once('error', reject);
      s.once('secureConnect', () => {
        s.removeListener('error', reject);
        this.socket = s;
        this.listen(s);
        resolveTls();
      });
    });
  }

  /** The next message, or CLOSED once the server closed the connection. Throws after `timeoutMs` without one. */
  async next(timeoutMs = 5000): Promise<BackendMessage | typeof CLOSED> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = this.take();
      if (m) return m;
      if (this.ended) return CLOSED;
      await this.wait(deadline, 'a message');
    }
  }

  /** Messages up to and including the first of type `type` (or up to the close). */
  async until(type: string, timeoutMs = 5000): Promise<BackendMessage[]> {
    const out: BackendMessage[] = [];
    for (;;) {
      const m = await this.next(timeoutMs);
      if (m === CLOSED) return out;
      out.push(m);
      if (m.type === type) return out;
    }
  }

  /** Everything the server sends until it closes the connection. */
  async untilClosed(timeoutMs = 5000): Promise<BackendMessage[]> {
    const out: BackendMessage[] = [];
    for (;;) {
      const m = await this.next(timeoutMs);
      if (m === CLOSED) return out;
      out.push(m);
    }
  }

  /** Stops reading from the socket; the server's writes back up into the kernel and then into the server. */
  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }

  end(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }

  /**
   * Closes with the server's answer still unread, which makes the kernel
   * reset the connection (RST) rather than close it. (resetAndDestroy on a
   * socket under TLS crashes Node 20, so this is the portable way.)
   */
  async abortAfter(bytes: Buffer, waitMs = 50): Promise<void> {
    this.pause();
    this.write(bytes);
    await new Promise((r) => setTimeout(r, waitMs));
    this.destroy();
  }

  private listen(s: Socket): void {
    s.on('data', (chunk: Buffer) => {
      this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
      if (this.rawBytes === 0) this.parse();
      this.wake();
    });
    s.on('end', () => this.finish());
    s.on('close', () => this.finish());
    s.on('error', () => this.finish());
  }

  private finish(): void {
    this.ended = true;
    this.wake();
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }

  private take(): BackendMessage | undefined {
    if (this.head >= this.queue.length) {
      this.parse();
      if (this.head >= this.queue.length) return undefined;
    }
    const m = this.queue[this.head++];
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    return m;
  }

  private parse(): void {
    let off = 0;
    while (this.buf.length - off >= 5) {
      const len = this.buf.readInt32BE(off + 1);
      if (len < 4) {
        // Not PostgreSQL framing (for example the server answered with a bare byte): stop reading messages.
        this.socket.destroy();
        this.buf = Buffer.alloc(0);
        return;
      }
      if (this.buf.length - off < len + 1) break;
      this.queue.push({ type: String.fromCharCode(this.buf[off]), payload: this.buf.subarray(off + 5, off + 1 + len) });
      off += len + 1;
    }
    if (off > 0) this.buf = this.buf.subarray(off);
  }

  private wait(deadline: number, what: string): Promise<void> {
    const ms = deadline - Date.now();
    if (ms <= 0) return Promise.reject(new Error(`no ${what} from the server in time`));
    return new Promise((resolveWait, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        reject(new Error(`no ${what} from the server in time`));
      }, ms);
      this.waiter = () => {
        clearTimeout(timer);
        resolveWait();
      };
    });
  }
}

/** The fields of an ErrorResponse or NoticeResponse keyed by field code (S, C, M, ...). */
export function errorFields(m: BackendMessage | typeof CLOSED | undefined): Record<string, string> {
  if (m === undefined || m === CLOSED) throw new Error('expected an ErrorResponse, the connection closed');
  if (m.type !== 'E' && m.type !== 'N') throw new Error(`expected an ErrorResponse, got message type ${m.type}`);
  return parseErrorFields(m.payload);
}

/** The Authentication subcode of an 'R' message, or undefined for other messages. */
export function authCode(m: BackendMessage): number | undefined {
  return m.type === String.fromCharCode(BE.Authentication) ? m.payload.readInt32BE(0) : undefined;
}

export interface Session {
  readonly client: RawClient;
  /** Sluice's BackendKeyData for this session (what a CancelRequest must name). */
  readonly key: { pid: number; secret: number };
  readonly parameters: Record<string, string>;
}

/**
 * Opens an authenticated session the way libpq does (optionally over TLS) and
 * returns once the server reported ReadyForQuery. Throws with the server's
 * error message if it refused.
 */
export async function openSession(
  host: string,
  port: number,
  params: Record<string, string>,
  token: string,
  opts: { tls?: boolean } = {},
): Promise<Session> {
  const client = await RawClient.connect(host, port);
  try {
    if (opts.tls ?? true) await client.startTls();
    client.write(startupMessage(params));
    const ask = await client.next();
    if (ask === CLOSED) throw new Error('server closed the connection after the startup packet');
    if (ask.type === 'E') throw new Error(`server refused the startup: ${errorFields(ask).M}`);
    if (authCode(ask) !== AUTH.CleartextPassword) throw new Error(`expected AuthenticationCleartextPassword, got ${ask.type}`);
    client.write(passwordMessage(token));
    const hello = await client.until('Z');
    const err = hello.find((m) => m.type === 'E');
    if (err) throw new Error(`server refused the session: ${errorFields(err).M}`);
    const parameters: Record<string, string> = {};
    let key: { pid: number; secret: number } | undefined;
    for (const m of hello) {
      if (m.type === 'S') {
        const [name, value] = m.payload.toString('utf8').split('\0');
        parameters[name] = value;
      } else if (m.type === 'K') key = parseBackendKeyData(m.payload);
    }
    if (!key || hello[hello.length - 1]?.type !== 'Z') throw new Error('session opened without BackendKeyData or ReadyForQuery');
    return { client, key, parameters };
  } catch (err) {
    client.destroy();
    throw err;
  }
}
