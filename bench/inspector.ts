import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { BenchError } from './errors.js';

/**
 * Forces a full garbage collection in a Node process started with
 * --inspect=127.0.0.1:<port>, so that heap figures count live objects only.
 * Node 20 has no WebSocket client, and this needs one request, so the
 * handful of frames is written by hand.
 */
export async function collectGarbage(inspectPort: number): Promise<void> {
  const res = await fetch(`http://127.0.0.1:${inspectPort}/json/list`, { signal: AbortSignal.timeout(5000) });
  const targets = (await res.json()) as { webSocketDebuggerUrl?: string }[];
  const url = targets[0]?.webSocketDebuggerUrl;
  if (!url) throw new BenchError('bench_inspector', `no inspector target on port ${inspectPort}`);
  const socket = await openWebSocket(new URL(url));
  try {
    socket.write(frame(JSON.stringify({ id: 1, method: 'HeapProfiler.collectGarbage' })));
    await replyTo(socket, 1);
  } finally {
    socket.destroy();
  }
}

function openWebSocket(url: URL): Promise<Socket> {
  return new Promise((resolveOpen, reject) => {
    const socket = connect({ host: url.hostname, port: Number(url.port) });
    const timer = setTimeout(() => socket.destroy(new BenchError('bench_inspector', 'inspector handshake timed out')), 5000);
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.once('connect', () => {
      socket.write(
        `GET ${url.pathname} HTTP/1.1\r\nHost: ${url.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      );
    });
    let head = Buffer.alloc(0);
    const onData = (d: Buffer) => {
      head = Buffer.concat([head, d]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.off('data', onData);
      clearTimeout(timer);
      if (!/^HTTP\/1\.1 101/.test(head.toString('latin1'))) {
        socket.destroy();
        reject(new BenchError('bench_inspector', 'the inspector refused the WebSocket upgrade'));
        return;
      }
      const rest = head.subarray(end + 4);
      if (rest.length) socket.unshift(rest);
      resolveOpen(socket);
    };
    socket.on('data', onData);
  });
}

/** One masked text frame, as a client must send. */
function frame(text: string): Buffer {
  const payload = Buffer.from(text);
  const len = payload.length;
  const header = len < 126 ? Buffer.from([0x81, 0x80 | len]) : Buffer.from([0x81, 0x80 | 126, len >> 8, len & 0xff]);
  const mask = randomBytes(4);
  const masked = Buffer.alloc(len);
  for (let i = 0; i < len; i++) masked[i] = payload[i] ^ mask[i & 3];
  return Buffer.concat([header, mask, masked]);
}

/** Reads unmasked server frames until the JSON reply with this id arrives. */
function replyTo(socket: Socket, id: number): Promise<void> {
  return new Promise((resolveReply, reject) => {
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => done(new BenchError('bench_inspector', 'no reply from the inspector within 30 s')), 30_000);
    const done = (err?: Error) => {
      clearTimeout(timer);
      socket.off('data', onData);
      if (err) reject(err);
      else resolveReply();
    };
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        if (buf.length < 2) return;
        let len = buf[1] & 0x7f;
        let offset = 2;
        if (len === 126) {
          if (buf.length < 4) return;
          len = buf.readUInt16BE(2);
          offset = 4;
        } else if (len === 127) {
          if (buf.length < 10) return;
          len = Number(buf.readBigUInt64BE(2));
          offset = 10;
        }
        if (buf.length < offset + len) return;
        const text = buf.subarray(offset, offset + len).toString('utf8');
        buf = buf.subarray(offset + len);
        let msg: { id?: number; error?: { message?: string } };
        try {
          msg = JSON.parse(text) as typeof msg;
        } catch {
          continue;
        }
        if (msg.id === id) {
          done(msg.error ? new BenchError('bench_inspector', `inspector: ${msg.error.message ?? 'error'}`) : undefined);
          return;
        }
      }
    };
    socket.on('data', onData);
    socket.once('error', (err) => done(err));
  });
}
