/** A backend message to cut out of the stream to the client, by stream offsets, and what goes in its place. */
export interface Splice {
  readonly start: number;
  readonly end: number;
  readonly replacement: Buffer;
}

/**
 * Turns the backend's byte stream into what the client receives: whole
 * messages swapped for replacements (a denial's error, a masked row) and
 * the start of a message that may still be replaced held back until it is
 * complete. Offsets are positions in the whole stream, as BackendScanner
 * reports them. Only chunks that need it are copied.
 */
export class StreamSplicer {
  private held: Buffer[] | null = null;
  private heldFrom = 0;

  /** True while bytes are held back: what the client has seen ends at a message boundary. */
  get holding(): boolean {
    return this.held !== null;
  }

  /**
   * The parts to send for one chunk that starts at stream offset `base`,
   * given the splices of the messages that completed in it (in order) and
   * where an incomplete message to hold back begins.
   */
  take(chunk: Buffer, base: number, splices: readonly Splice[], holdFrom: number | undefined): Buffer[] {
    if (this.held === null && splices.length === 0 && holdFrom === undefined) return [chunk];
    if (this.held !== null && splices.length === 0 && holdFrom === this.heldFrom) {
      // Still inside the same incomplete message: keep the chunk, copy nothing until it is complete.
      this.held.push(chunk);
      return [];
    }
    const dataBase = this.held ? this.heldFrom : base;
    const data = this.held ? Buffer.concat([...this.held, chunk]) : chunk;
    const dataEnd = base + chunk.length;
    const parts: Buffer[] = [];
    let pos = dataBase;
    for (const s of splices) {
      // A message that began before the bytes still in hand was forwarded already; it reaches the client unreplaced.
      if (s.start < pos) continue;
      if (s.start > pos) parts.push(data.subarray(pos - dataBase, s.start - dataBase));
      parts.push(s.replacement);
      pos = s.end;
    }
    const stop = holdFrom ?? dataEnd;
    if (stop > pos) parts.push(data.subarray(pos - dataBase, stop - dataBase));
    this.held = holdFrom !== undefined ? [data.subarray(Math.max(holdFrom, pos) - dataBase)] : null;
    this.heldFrom = holdFrom !== undefined ? Math.max(holdFrom, pos) : 0;
    return parts;
  }
}
