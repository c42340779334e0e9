import { isUtf8 } from 'node:buffer';
import { ProtocolError } from './errors.js';

/**
 * Bounds-checked reading of one message payload. Every out-of-range read or
 * leftover byte becomes a ProtocolError naming the message, so parsers never
 * throw RangeError on hostile input.
 */
export class PayloadCursor {
  private off = 0;
  constructor(
    private readonly buf: Buffer,
    private readonly what: string,
    private readonly errorCode: string = 'frame_malformed',
    /** Client text is checked so the guard judges exactly the bytes the backend will run. */
    private readonly strictUtf8: boolean = true,
  ) {}

  get remaining(): number {
    return this.buf.length - this.off;
  }

  fail(reason: string): never {
    throw new ProtocolError(this.errorCode, `malformed ${this.what} message: ${reason}`);
  }

  private need(n: number): void {
    if (this.buf.length - this.off < n) this.fail(`truncated at byte ${this.off}`);
  }

  byte(): number {
    this.need(1);
    return this.buf[this.off++];
  }

  int16(): number {
    this.need(2);
    const v = this.buf.readInt16BE(this.off);
    this.off += 2;
    return v;
  }

  uint16(): number {
    this.need(2);
    const v = this.buf.readUInt16BE(this.off);
    this.off += 2;
    return v;
  }

  int32(): number {
    this.need(4);
    const v = this.buf.readInt32BE(this.off);
    this.off += 4;
    return v;
  }

  uint32(): number {
    this.need(4);
    const v = this.buf.readUInt32BE(this.off);
    this.off += 4;
    return v;
  }

  /** A view of the next n bytes (no copy). */
  bytes(n: number): Buffer {
    if (n < 0) this.fail(`negative length ${n}`);
    this.need(n);
    const v = this.buf.subarray(this.off, this.off + n);
    this.off += n;
    return v;
  }

  /** A view of everything left. */
  rest(): Buffer {
    const v = this.buf.subarray(this.off);
    this.off = this.buf.length;
    return v;
  }

  /** A NUL-terminated string. */
  cstring(): string {
    const end = this.buf.indexOf(0, this.off);
    if (end < 0) this.fail(`string at byte ${this.off} is not NUL-terminated`);
    const s = this.decode(this.off, end);
    this.off = end + 1;
    return s;
  }

  private decode(start: number, end: number): string {
    if (this.strictUtf8 && !isAscii(this.buf, start, end) && !isUtf8(this.buf.subarray(start, end))) {
      throw new ProtocolError('text_malformed', `invalid UTF-8 in ${this.what} message`);
    }
    return this.buf.toString('utf8', start, end);
  }

  /** The message must be fully consumed. */
  end(): void {
    if (this.off !== this.buf.length) this.fail(`${this.buf.length - this.off} unexpected trailing bytes`);
  }
}

/** Short ASCII strings are the common case; checking them inline skips a native call. */
function isAscii(buf: Buffer, start: number, end: number): boolean {
  if (end - start > 64) return false;
  for (let i = start; i < end; i++) if (buf[i] > 0x7f) return false;
  return true;
}
