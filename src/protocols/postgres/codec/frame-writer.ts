/**
 * Builds one message in a single exactly-sized allocation: callers first
 * declare what goes in (sizes are known up front), then it is written once.
 */
export class FrameWriter {
  private readonly buf: Buffer;
  private off: number;

  /** `type` null for untyped startup-phase packets. `bodyBytes` excludes the type byte and length. */
  constructor(type: number | null, bodyBytes: number) {
    const header = type === null ? 4 : 5;
    this.buf = Buffer.allocUnsafe(header + bodyBytes);
    if (type !== null) this.buf[0] = type;
    this.buf.writeInt32BE(4 + bodyBytes, header - 4);
    this.off = header;
  }

  byte(v: number): this {
    this.buf[this.off++] = v;
    return this;
  }

  int32(v: number): this {
    this.buf.writeInt32BE(v, this.off);
    this.off += 4;
    return this;
  }

  /** Accepts the full unsigned range and negative int32 alike (keys are 32 opaque bits). */
  uint32(v: number): this {
    this.buf.writeUInt32BE(v >>> 0, this.off);
    this.off += 4;
    return this;
  }

  /** `s` must already be free of NUL and its byte length counted with cstringBytes. */
  cstring(s: string): this {
    this.off += this.buf.write(s, this.off, 'utf8');
    this.buf[this.off++] = 0;
    return this;
  }

  bytes(b: Buffer): this {
    b.copy(this.buf, this.off);
    this.off += b.length;
    return this;
  }

  done(): Buffer {
    if (this.off !== this.buf.length) throw new RangeError(`FrameWriter wrote ${this.off} of ${this.buf.length} bytes`);
    return this.buf;
  }
}

export function cstringBytes(s: string): number {
  return Buffer.byteLength(s, 'utf8') + 1;
}
