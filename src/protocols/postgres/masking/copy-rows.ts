import { SluiceError } from '../../../errors.js';

/**
 * Parses and rewrites the rows of a `COPY ... TO STDOUT` stream, one CopyData
 * payload at a time, so masking can replace fields without understanding the
 * column types. PostgreSQL sends exactly one row per CopyData (the binary
 * header rides with the first tuple, the trailer comes alone); a payload that
 * holds several complete rows is accepted too, but a row split across
 * payloads is refused: guessing where it continues could shift fields and
 * leak a value that should have been masked.
 */

export type CopyFormat =
  | {
      readonly kind: 'text';
      readonly delimiter: string;
      readonly null: string;
      /** PostgreSQL 15+ allows HEADER in text format; the header row passes through untouched. */
      readonly header?: boolean;
    }
  | {
      readonly kind: 'csv';
      readonly delimiter: string;
      readonly quote: string;
      readonly escape: string;
      readonly null: string;
      readonly header: boolean;
    }
  | { readonly kind: 'binary' };

export const TEXT_DEFAULTS = { kind: 'text', delimiter: '\t', null: '\\N' } as const satisfies CopyFormat;
export const CSV_DEFAULTS = { kind: 'csv', delimiter: ',', quote: '"', escape: '"', null: '', header: false } as const satisfies CopyFormat;

export const KEEP: unique symbol = Symbol('keep');

/**
 * Decides one field: KEEP passes the original bytes through untouched; a
 * Buffer replaces the (decoded) value; null makes it SQL NULL. `value` is the
 * decoded field (text: backslash escapes undone; csv: quotes undone; binary:
 * raw bytes), null for SQL NULL.
 */
export type FieldMasker = (index: number, value: Buffer | null) => Buffer | null | typeof KEEP;

/** COPY data did not have the shape PostgreSQL produces; the COPY must be aborted rather than relayed. */
export class CopyFormatError extends SluiceError {
  constructor(detail: string) {
    super(
      'copy_format',
      `COPY data could not be parsed for masking (${detail}); the transfer was stopped so no unmasked value is relayed. ` +
        'Check that the upstream is PostgreSQL and the COPY options are ones Sluice understands, or run the query without COPY.',
    );
    this.name = 'CopyFormatError';
  }
}

/** The 11-byte signature every binary COPY stream starts with. */
export const BINARY_SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');
/** Signature, no flags, no header extension: what PostgreSQL itself writes. */
export const BINARY_HEADER = Buffer.concat([BINARY_SIGNATURE, Buffer.alloc(8)]);
export const BINARY_TRAILER = Buffer.from([0xff, 0xff]);

const LF = 0x0a;
const CR = 0x0d;
const BACKSLASH = 0x5c;
const DOT = 0x2e;
/** Flag bit 16 says each tuple carries an OID field (servers before 12, WITH OIDS). */
const FLAG_OIDS = 1 << 16;
const CRITICAL_FLAGS = 0xffff0000 | 0;

/** Escapes PostgreSQL writes for control characters in text format (copyto.c CopyAttributeOutText). */
const TEXT_CONTROL_ESCAPES: Record<number, number> = { 0x08: 0x62, 0x0c: 0x66, 0x0a: 0x6e, 0x0d: 0x72, 0x09: 0x74, 0x0b: 0x76 };
const TEXT_DECODE: Record<number, number> = { 0x62: 0x08, 0x66: 0x0c, 0x6e: 0x0a, 0x72: 0x0d, 0x74: 0x09, 0x76: 0x0b };

interface TextOptions {
  readonly delim: number;
  readonly nullBytes: Buffer;
}
interface CsvOptions extends TextOptions {
  readonly quote: number;
  readonly escape: number;
}

export class CopyRowMasker {
  private readonly format: CopyFormat;
  private readonly mask: FieldMasker;
  private readonly text?: TextOptions;
  private readonly csv?: CsvOptions;
  private headerPending: boolean;
  private fieldCount = -1;
  private binaryStarted = false;
  private binaryOids = false;
  private finished = false;

  /**
   * `relevant`, when given, names the fields the masker needs to see; the
   * others pass through without being decoded (most columns of a masked
   * result are not masked).
   */
  constructor(
    format: CopyFormat,
    mask: FieldMasker,
    private readonly relevant?: (index: number) => boolean,
    /** The number of fields every row must have, when the caller knows it: a row with another count is refused, never masked by a shifted plan. */
    expectedFields?: number,
  ) {
    this.format = format;
    this.mask = mask;
    if (expectedFields !== undefined) this.fieldCount = expectedFields;
    if (format.kind === 'text') this.text = textOptions(format);
    else if (format.kind === 'csv') this.csv = csvOptions(format);
    this.headerPending = format.kind !== 'binary' && format.header === true;
  }

  /**
   * Rewrites one CopyData payload (one row, or binary header+row, or trailer).
   * Returns the same Buffer instance when every field was KEEP.
   */
  row(payload: Buffer): Buffer {
    return this.splice(payload).result();
  }

  /**
   * The whole CopyData message to send instead of this payload, built in one
   * allocation, or undefined when every field was KEEP.
   */
  message(payload: Buffer): Buffer | undefined {
    return this.splice(payload).message(COPY_DATA);
  }

  private splice(payload: Buffer): Splicer {
    if (this.finished) throw new CopyFormatError('data after the binary trailer');
    const out = new Splicer(payload);
    if (this.format.kind === 'binary') this.binary(payload, out);
    else {
      if (payload.length === 0) throw new CopyFormatError('empty row');
      let pos = 0;
      while (pos < payload.length) pos = this.csv ? this.csvRow(payload, pos, out, this.csv) : this.textRow(payload, pos, out, this.text!);
    }
    return out;
  }

  private checkCount(n: number): void {
    if (this.fieldCount === -1) this.fieldCount = n;
    else if (n !== this.fieldCount) throw new CopyFormatError(`row has ${n} fields where earlier rows had ${this.fieldCount}`);
  }

  /** Applies the masker to one field and records the replacement; `start`/`end` delimit its raw bytes. */
  private decide(out: Splicer, index: number, value: Buffer | null, start: number, end: number, encode: (v: Buffer) => Buffer, nullRaw: Buffer): void {
    const verdict = this.mask(index, value);
    if (verdict === KEEP || (verdict === null && value === null)) return;
    out.replace(start, end, verdict === null ? nullRaw : encode(verdict));
  }

  private textRow(p: Buffer, start: number, out: Splicer, o: TextOptions): number {
    const header = this.headerPending;
    this.headerPending = false;
    const fields: [number, number, boolean][] = [];
    let fieldStart = start;
    let escaped = false;
    let i = start;
    for (;;) {
      if (i >= p.length) throw new CopyFormatError('row does not end with a newline (a row split across messages?)');
      const c = p[i];
      if (c === BACKSLASH) {
        if (i + 1 >= p.length) throw new CopyFormatError('backslash at the end of the data');
        if (p[i + 1] === DOT) throw new CopyFormatError('end-of-data marker inside a row');
        escaped = true;
        i += 2;
        continue;
      }
      if (c === o.delim || c === LF) {
        fields.push([fieldStart, i, escaped]);
        fieldStart = i + 1;
        escaped = false;
        i++;
        if (c === LF) break;
        continue;
      }
      if (c === CR) throw new CopyFormatError('unescaped carriage return in text format');
      i++;
    }
    this.checkCount(fields.length);
    if (!header) {
      const encode = (v: Buffer): Buffer => encodeTextField(v, o);
      for (let f = 0; f < fields.length; f++) {
        if (this.relevant && !this.relevant(f)) continue;
        const [s, e, esc] = fields[f];
        const raw = p.subarray(s, e);
        const value = raw.equals(o.nullBytes) ? null : esc ? decodeText(raw) : raw;
        this.decide(out, f, value, s, e, encode, o.nullBytes);
      }
    }
    return i;
  }

  private csvRow(p: Buffer, start: number, out: Splicer, o: CsvOptions): number {
    const header = this.headerPending;
    this.headerPending = false;
    const fields: { s: number; e: number; quoted: boolean; simple: boolean }[] = [];
    let i = start;
    for (;;) {
      // One field: quoted sections may sit anywhere in it and may hold delimiters and newlines.
      const s = i;
      let quoted = false;
      // A field is "simple" when its value is a plain slice: unquoted, or one quoted section with no escapes.
      let simple = true;
      let inQuote = false;
      let end: number;
      for (;;) {
        if (i >= p.length) {
          throw new CopyFormatError(inQuote ? 'unterminated quoted field' : 'row does not end with a newline (a row split across messages?)');
        }
        const c = p[i];
        if (inQuote) {
          if (c === o.escape && i + 1 < p.length && (p[i + 1] === o.escape || p[i + 1] === o.quote)) {
            simple = false;
            i += 2;
            continue;
          }
          if (c === o.quote) inQuote = false;
          i++;
          continue;
        }
        if (c === o.delim || c === LF) {
          end = i;
          break;
        }
        if (c === CR) throw new CopyFormatError('unquoted carriage return in CSV');
        if (c === o.quote) {
          if (quoted || i !== s) simple = false;
          quoted = true;
          inQuote = true;
        } else if (quoted) simple = false;
        i++;
      }
      fields.push({ s, e: end, quoted, simple });
      i = end + 1;
      if (p[end] === LF) break;
    }
    this.checkCount(fields.length);
    if (!header) {
      const encode = (v: Buffer): Buffer => encodeCsvField(v, o);
      for (let f = 0; f < fields.length; f++) {
        if (this.relevant && !this.relevant(f)) continue;
        const { s, e, quoted, simple } = fields[f];
        let value: Buffer | null;
        if (!quoted) value = p.subarray(s, e).equals(o.nullBytes) ? null : p.subarray(s, e);
        else if (simple) value = p.subarray(s + 1, e - 1);
        else value = decodeCsv(p.subarray(s, e), o);
        this.decide(out, f, value, s, e, encode, o.nullBytes);
      }
    }
    return i;
  }

  private binary(p: Buffer, out: Splicer): void {
    let pos = 0;
    if (!this.binaryStarted) {
      if (p.length < 19 || !p.subarray(0, 11).equals(BINARY_SIGNATURE)) throw new CopyFormatError('binary COPY signature missing');
      const flags = p.readInt32BE(11);
      if ((flags & CRITICAL_FLAGS & ~FLAG_OIDS) !== 0) throw new CopyFormatError('unknown critical flags in the binary COPY header');
      this.binaryOids = (flags & FLAG_OIDS) !== 0;
      const ext = p.readInt32BE(15);
      if (ext < 0 || 19 + ext > p.length) throw new CopyFormatError('bad binary COPY header extension length');
      pos = 19 + ext;
      this.binaryStarted = true;
    }
    while (pos < p.length) {
      if (pos + 2 > p.length) throw new CopyFormatError('truncated tuple field count');
      const count = p.readInt16BE(pos);
      pos += 2;
      if (count === -1) {
        this.finished = true;
        if (pos !== p.length) throw new CopyFormatError('data after the binary trailer');
        return;
      }
      if (count < 0) throw new CopyFormatError(`negative field count ${count}`);
      this.checkCount(count);
      if (this.binaryOids) pos = binaryField(p, pos).next;
      for (let f = 0; f < count; f++) {
        const { value, next } = binaryField(p, pos);
        if (!this.relevant || this.relevant(f)) this.decide(out, f, value, pos, next, encodeBinaryField, BINARY_NULL);
        pos = next;
      }
    }
  }
}

const BINARY_NULL = Buffer.from([0xff, 0xff, 0xff, 0xff]);

function binaryField(p: Buffer, pos: number): { value: Buffer | null; next: number } {
  if (pos + 4 > p.length) throw new CopyFormatError('truncated field length');
  const len = p.readInt32BE(pos);
  if (len === -1) return { value: null, next: pos + 4 };
  if (len < 0) throw new CopyFormatError(`invalid field length ${len}`);
  if (pos + 4 + len > p.length) throw new CopyFormatError('field runs past the end of the message');
  return { value: p.subarray(pos + 4, pos + 4 + len), next: pos + 4 + len };
}

const COPY_DATA = 0x64;

/** Collects replacements in order (as offsets, without slicing) and builds a new Buffer only if there was one. */
class Splicer {
  private readonly edits: (number | Buffer)[] = [];
  private size: number;
  constructor(private readonly src: Buffer) {
    this.size = src.length;
  }
  replace(start: number, end: number, bytes: Buffer): void {
    this.edits.push(start, end, bytes);
    this.size += bytes.length - (end - start);
  }
  result(): Buffer {
    if (this.edits.length === 0) return this.src;
    return this.build(Buffer.allocUnsafe(this.size), 0);
  }
  /** The payload framed as a backend message of `type`, or undefined when nothing changed. */
  message(type: number): Buffer | undefined {
    if (this.edits.length === 0) return undefined;
    const msg = Buffer.allocUnsafe(this.size + 5);
    msg[0] = type;
    msg.writeInt32BE(this.size + 4, 1);
    return this.build(msg, 5);
  }
  private build(out: Buffer, at: number): Buffer {
    let copied = 0;
    for (let k = 0; k < this.edits.length; k += 3) {
      const start = this.edits[k] as number;
      at += this.src.copy(out, at, copied, start);
      at += (this.edits[k + 2] as Buffer).copy(out, at);
      copied = this.edits[k + 1] as number;
    }
    this.src.copy(out, at, copied);
    return out;
  }
}

function singleByte(what: string, s: string): number {
  if (s.length !== 1 || s.charCodeAt(0) >= 0x80) throw new CopyFormatError(`${what} must be a single ASCII character`);
  return s.charCodeAt(0);
}

function textOptions(f: Extract<CopyFormat, { kind: 'text' }>): TextOptions {
  const delim = singleByte('COPY delimiter', f.delimiter);
  if (delim === BACKSLASH || delim === LF || delim === CR) throw new CopyFormatError('COPY delimiter cannot be backslash, newline or carriage return');
  // Lowercase letters, digits and '.' would collide with backslash escapes; PostgreSQL refuses them too.
  if (/[a-z0-9.]/.test(f.delimiter)) throw new CopyFormatError('COPY delimiter cannot be a lowercase letter, digit or dot in text format');
  return { delim, nullBytes: nullOption(f.null, f.delimiter) };
}

function csvOptions(f: Extract<CopyFormat, { kind: 'csv' }>): CsvOptions {
  const delim = singleByte('COPY delimiter', f.delimiter);
  const quote = singleByte('CSV quote', f.quote);
  const escape = singleByte('CSV escape', f.escape);
  if (delim === LF || delim === CR || delim === BACKSLASH) throw new CopyFormatError('COPY delimiter cannot be backslash, newline or carriage return');
  if (quote === delim) throw new CopyFormatError('CSV quote and delimiter must differ');
  if (quote === LF || quote === CR || escape === LF || escape === CR) throw new CopyFormatError('CSV quote and escape cannot be newline or carriage return');
  if (f.null.includes(f.quote)) throw new CopyFormatError('CSV quote must not appear in the NULL string');
  return { delim, quote, escape, nullBytes: nullOption(f.null, f.delimiter) };
}

function nullOption(s: string, delimiter: string): Buffer {
  if (/[\r\n]/.test(s)) throw new CopyFormatError('the NULL string cannot contain newline or carriage return');
  if (s.includes(delimiter)) throw new CopyFormatError('the delimiter must not appear in the NULL string');
  return Buffer.from(s, 'utf8');
}

const isOctal = (c: number): boolean => c >= 0x30 && c <= 0x37;
function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  return -1;
}

/** Undoes text-format escapes the way copyfromparse.c CopyReadAttributesText does. */
function decodeText(raw: Buffer): Buffer {
  const out = Buffer.allocUnsafe(raw.length);
  let n = 0;
  for (let i = 0; i < raw.length; ) {
    const c = raw[i++];
    if (c !== BACKSLASH) {
      out[n++] = c;
      continue;
    }
    // The scanner guarantees a byte follows every backslash.
    const e = raw[i++];
    if (isOctal(e)) {
      let v = e - 0x30;
      for (let k = 0; k < 2 && i < raw.length && isOctal(raw[i]); k++) v = (v << 3) + raw[i++] - 0x30;
      out[n++] = v & 0xff;
    } else if (e === 0x78 && i < raw.length && hexValue(raw[i]) >= 0) {
      let v = hexValue(raw[i++]);
      if (i < raw.length && hexValue(raw[i]) >= 0) v = (v << 4) + hexValue(raw[i++]);
      out[n++] = v;
    } else out[n++] = TEXT_DECODE[e] ?? e;
  }
  return out.subarray(0, n);
}

/** Undoes CSV quoting the way copyfromparse.c CopyReadAttributesCSV does. */
function decodeCsv(raw: Buffer, o: CsvOptions): Buffer {
  const out = Buffer.allocUnsafe(raw.length);
  let n = 0;
  let inQuote = false;
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i];
    if (inQuote) {
      if (c === o.escape && i + 1 < raw.length && (raw[i + 1] === o.escape || raw[i + 1] === o.quote)) {
        out[n++] = raw[++i];
        continue;
      }
      if (c === o.quote) {
        inQuote = false;
        continue;
      }
      out[n++] = c;
    } else if (c === o.quote) inQuote = true;
    else out[n++] = c;
  }
  return out.subarray(0, n);
}

/** Escapes a value for text format exactly as copyto.c CopyAttributeOutText does. */
function encodeTextField(v: Buffer, o: TextOptions): Buffer {
  let extra = 0;
  for (const c of v) if (c === BACKSLASH || c === o.delim || TEXT_CONTROL_ESCAPES[c] !== undefined) extra++;
  let out: Buffer;
  if (extra === 0) out = v;
  else {
    out = Buffer.allocUnsafe(v.length + extra);
    let n = 0;
    for (const c of v) {
      const ctl = TEXT_CONTROL_ESCAPES[c];
      if (ctl !== undefined) {
        out[n++] = BACKSLASH;
        out[n++] = ctl;
      } else if (c === BACKSLASH || c === o.delim) {
        out[n++] = BACKSLASH;
        out[n++] = c;
      } else out[n++] = c;
    }
  }
  // A value whose escaped form equals the NULL string would be read back as NULL
  // (PostgreSQL has that ambiguity too); an octal escape of its first byte keeps it a value.
  // The empty string cannot be told apart from NULL '' at all in text format.
  if (out.length > 0 && out.equals(o.nullBytes)) {
    const b = out[0];
    out = Buffer.concat([Buffer.from(`\\${b.toString(8).padStart(3, '0')}`, 'latin1'), out.subarray(1)]);
  }
  return out;
}

const DOT_LINE = Buffer.from('\\.', 'latin1');

/** Quotes a value for CSV as copyto.c CopyAttributeOutCSV does, whenever it is needed to read it back unchanged. */
function encodeCsvField(v: Buffer, o: CsvOptions): Buffer {
  let needQuote = v.equals(o.nullBytes) || v.equals(DOT_LINE);
  let extra = 0;
  for (const c of v) {
    if (c === o.quote || c === o.escape) {
      extra++;
      needQuote = true;
    } else if (c === o.delim || c === LF || c === CR) needQuote = true;
  }
  if (!needQuote) return v;
  const out = Buffer.allocUnsafe(v.length + extra + 2);
  let n = 0;
  out[n++] = o.quote;
  for (const c of v) {
    if (c === o.quote || c === o.escape) out[n++] = o.escape;
    out[n++] = c;
  }
  out[n++] = o.quote;
  return out;
}

function encodeBinaryField(v: Buffer): Buffer {
  const out = Buffer.allocUnsafe(4 + v.length);
  out.writeInt32BE(v.length, 0);
  v.copy(out, 4);
  return out;
}

/**
 * Encodes one row as PostgreSQL would send it in one CopyData (text/csv: with
 * the trailing newline; binary: the tuple only, see BINARY_HEADER/BINARY_TRAILER).
 */
export function encodeCopyRow(format: CopyFormat, fields: readonly (Buffer | null)[]): Buffer {
  if (format.kind === 'binary') {
    const count = Buffer.allocUnsafe(2);
    count.writeInt16BE(fields.length, 0);
    return Buffer.concat([count, ...fields.map((f) => (f === null ? BINARY_NULL : encodeBinaryField(f)))]);
  }
  const o = format.kind === 'text' ? textOptions(format) : csvOptions(format);
  const parts: Buffer[] = [];
  const delim = Buffer.from([o.delim]);
  fields.forEach((f, i) => {
    if (i > 0) parts.push(delim);
    parts.push(f === null ? o.nullBytes : format.kind === 'text' ? encodeTextField(f, o) : encodeCsvField(f, o as CsvOptions));
  });
  parts.push(Buffer.from([LF]));
  return Buffer.concat(parts);
}
