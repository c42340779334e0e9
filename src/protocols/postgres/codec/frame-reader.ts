import { ProtocolError } from './errors.js';

export interface Frame {
  /** The message type byte. */
  readonly type: number;
  /** The bytes after the 4-byte length. */
  readonly payload: Buffer;
  /** The whole frame including type byte and length, ready to forward unchanged. */
  readonly raw: Buffer;
}

export interface FrameReaderOptions {
  /** Largest accepted length field of a typed message (it counts itself, not the type byte). */
  readonly maxMessageBytes: number;
  /** Largest accepted length field of a startup-phase packet. */
  readonly maxStartupBytes: number;
}

/** Chunks smaller than this are copied into an append buffer while a frame is pending, so a peer dribbling single bytes costs bytes, not Buffer objects. */
const SMALL_CHUNK = 4096;
const MIN_TAIL = 16 * 1024;
const MAX_TAIL = 1024 * 1024;

/**
 * Cuts a byte stream into PostgreSQL messages. A frame that lies inside one
 * received chunk is returned as a view of that chunk (no copy); only frames
 * that span chunks are assembled into a new buffer. Returned buffers are
 * never written to again, so callers may keep them.
 *
 * Frames are cut lazily by `next()` / `nextStartup()` because only the caller
 * knows whether the connection is still in the untyped startup phase.
 */
export class FrameReader {
  private readonly maxMessageBytes: number;
  private readonly maxStartupBytes: number;
  /** Unconsumed data in arrival order; `segs[0]` is consumed up to `pos`. */
  private segs: Buffer[] = [];
  private pos = 0;
  private total = 0;
  /** Append buffer backing the last segment when small chunks were copied in. */
  private tail: Buffer | undefined;
  private tailSegStart = 0;
  private tailEnd = 0;

  constructor(opts: FrameReaderOptions) {
    this.maxMessageBytes = opts.maxMessageBytes;
    this.maxStartupBytes = opts.maxStartupBytes;
  }

  /** Bytes received and not yet returned as frames. */
  get buffered(): number {
    return this.total;
  }

  push(chunk: Buffer): void {
    const n = chunk.length;
    if (n === 0) return;
    if (this.total === 0) {
      this.segs = [chunk];
      this.pos = 0;
      this.total = n;
      this.tail = undefined;
      return;
    }
    this.total += n;
    if (n >= SMALL_CHUNK) {
      this.segs.push(chunk);
      this.tail = undefined;
      return;
    }
    const tail = this.tail;
    if (tail && this.tailEnd + n <= tail.length) {
      chunk.copy(tail, this.tailEnd);
      this.tailEnd += n;
      this.segs[this.segs.length - 1] = tail.subarray(this.tailSegStart, this.tailEnd);
      return;
    }
    const cap = Math.min(MAX_TAIL, Math.max(MIN_TAIL, tail ? tail.length * 2 : 0, n));
    const fresh = Buffer.allocUnsafe(cap);
    chunk.copy(fresh, 0);
    this.tail = fresh;
    this.tailSegStart = 0;
    this.tailEnd = n;
    this.segs.push(fresh.subarray(0, n));
  }

  /**
   * One untyped length-prefixed packet (SSLRequest, GSSENCRequest,
   * CancelRequest, StartupMessage): the bytes after the 4-byte length.
   */
  nextStartup(): Buffer | undefined {
    if (this.total < 4) return undefined;
    const len = this.readInt32(0);
    if (len < 4) throw new ProtocolError('startup_malformed', `invalid startup packet length ${len}`);
    if (len > this.maxStartupBytes) {
      throw new ProtocolError('frame_too_large', `startup packet of ${len} bytes exceeds the limit of ${this.maxStartupBytes} bytes`);
    }
    if (this.total < len) return undefined;
    return this.take(len).subarray(4);
  }

  /** One typed message, or undefined until all of it has arrived. */
  next(): Frame | undefined {
    if (this.total < 5) return undefined;
    const seg = this.segs[0];
    let type: number;
    let len: number;
    if (seg.length - this.pos >= 5) {
      type = seg[this.pos];
      len = seg.readInt32BE(this.pos + 1);
    } else {
      type = this.byteAt(0);
      len = this.readInt32(1);
    }
    if (len < 4) throw new ProtocolError('frame_malformed', `invalid message length ${len} for message type 0x${type.toString(16)}`);
    if (len > this.maxMessageBytes) {
      throw new ProtocolError('frame_too_large', `message of ${len} bytes exceeds the limit of ${this.maxMessageBytes} bytes`);
    }
    const size = len + 1;
    if (this.total < size) return undefined;
    const raw = this.take(size);
    return { type, payload: raw.subarray(5), raw };
  }

  /** Everything buffered and not yet returned, e.g. to hand over to another reader. */
  drain(): Buffer {
    const out = this.total === 0 ? Buffer.alloc(0) : this.take(this.total);
    this.reset();
    return out;
  }

  private reset(): void {
    this.segs = [];
    this.pos = 0;
    this.total = 0;
    this.tail = undefined;
  }

  private byteAt(i: number): number {
    let off = this.pos + i;
    for (const seg of this.segs) {
      if (off < seg.length) return seg[off];
      off -= seg.length;
    }
    throw new RangeError('FrameReader.byteAt beyond buffered data');
  }

  private readInt32(i: number): number {
    const seg = this.segs[0];
    if (seg.length - this.pos >= i + 4) return seg.readInt32BE(this.pos + i);
    return ((this.byteAt(i) << 24) | (this.byteAt(i + 1) << 16) | (this.byteAt(i + 2) << 8) | this.byteAt(i + 3)) | 0;
  }

  /** Consumes `size` bytes (size <= total): a view when they lie in one segment, else a new buffer. */
  private take(size: number): Buffer {
    const seg = this.segs[0];
    const avail = seg.length - this.pos;
    let out: Buffer;
    if (avail >= size) {
      out = seg.subarray(this.pos, this.pos + size);
      this.pos += size;
      if (this.pos === seg.length) this.shift();
    } else {
      out = Buffer.allocUnsafe(size);
      let filled = 0;
      while (filled < size) {
        const s = this.segs[0];
        const n = Math.min(s.length - this.pos, size - filled);
        s.copy(out, filled, this.pos, this.pos + n);
        filled += n;
        this.pos += n;
        if (this.pos === s.length) this.shift();
      }
    }
    this.total -= size;
    if (this.total === 0) this.reset();
    return out;
  }

  private shift(): void {
    this.segs.shift();
    this.pos = 0;
    if (this.segs.length === 0) this.tail = undefined;
  }
}
