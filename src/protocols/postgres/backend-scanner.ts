/**
 * Finds message boundaries in the backend's byte stream without copying it.
 * The relay forwards backend chunks to the client unchanged; it only needs
 * the payloads of a few message types (CommandComplete, ErrorResponse,
 * ReadyForQuery, ...). DataRows and CopyData, the bulk of a result, are
 * skipped over by length and never touched.
 *
 * Offsets are positions in the whole stream since the scanner was made, so
 * that the relay can cut one message out of the bytes it forwards (the
 * ErrorResponse that answers a denied statement) even when that message
 * spans chunks.
 */
export type MessageHandler = (type: number, payload: Buffer, start: number, end: number) => void;

export class BackendScanner {
  private readonly header = Buffer.alloc(5);
  private headerLen = 0;
  private type = 0;
  /** Payload bytes of the current message not yet seen. */
  private remaining = 0;
  private collecting: Buffer | null = null;
  private collected = 0;
  /** Stream offset of the first byte of the next chunk. */
  private offset = 0;
  /** Stream offset where the current (incomplete) message began. */
  private messageStart = 0;

  constructor(
    private readonly wanted: (type: number) => boolean,
    private readonly onMessage: MessageHandler,
    /** Wanted messages longer than this are not collected: `onOversize` hears of them and they are skipped. */
    private readonly maxCollect = Infinity,
    private readonly onOversize: (type: number, length: number, start: number) => void = () => undefined,
  ) {}

  /** True when the bytes scanned so far end exactly at a message boundary. */
  atBoundary(): boolean {
    return this.headerLen === 0 && this.remaining === 0;
  }

  /** Stream offset just past the last byte scanned. */
  get position(): number {
    return this.offset;
  }

  /**
   * Where the message the last chunk ended inside began, if its type is
   * known and `of` selects it; else undefined. A header cut after its first
   * byte already names the type.
   */
  incompleteStart(of: (type: number) => boolean): number | undefined {
    if (this.atBoundary()) return undefined;
    const type = this.headerLen > 0 ? this.header[0] : this.type;
    return of(type) ? this.messageStart : undefined;
  }

  scan(chunk: Buffer): void {
    const base = this.offset;
    this.offset += chunk.length;
    let pos = 0;
    const len = chunk.length;
    while (pos < len) {
      if (this.remaining === 0 && this.headerLen < 5) {
        if (this.headerLen === 0 && len - pos >= 5) {
          this.messageStart = base + pos;
          this.type = chunk[pos];
          this.remaining = chunk.readInt32BE(pos + 1) - 4;
          pos += 5;
        } else {
          if (this.headerLen === 0) this.messageStart = base + pos;
          const take = Math.min(5 - this.headerLen, len - pos);
          chunk.copy(this.header, this.headerLen, pos, pos + take);
          this.headerLen += take;
          pos += take;
          if (this.headerLen < 5) return;
          this.type = this.header[0];
          this.remaining = this.header.readInt32BE(1) - 4;
        }
        this.headerLen = 0;
        if (this.remaining < 0) throw new RangeError(`backend sent a message with length ${this.remaining + 4}`);
        if (!this.wanted(this.type)) {
          this.collecting = null;
        } else if (this.remaining > this.maxCollect) {
          this.collecting = null;
          this.onOversize(this.type, this.remaining + 4, this.messageStart);
        } else if (len - pos >= this.remaining) {
          const payload = chunk.subarray(pos, pos + this.remaining);
          pos += this.remaining;
          this.remaining = 0;
          this.onMessage(this.type, payload, this.messageStart, base + pos);
          continue;
        } else {
          this.collecting = Buffer.allocUnsafe(this.remaining);
          this.collected = 0;
        }
        if (this.remaining === 0) continue;
      }
      const take = Math.min(this.remaining, len - pos);
      if (this.collecting) {
        chunk.copy(this.collecting, this.collected, pos, pos + take);
        this.collected += take;
      }
      pos += take;
      this.remaining -= take;
      if (this.remaining === 0 && this.collecting) {
        const payload = this.collecting;
        this.collecting = null;
        this.onMessage(this.type, payload, this.messageStart, base + pos);
      }
    }
  }
}
