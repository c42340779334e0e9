import { findSensitive, maskDetected, type DetectorName } from './detectors.js';
import { hashBytes, maskText, REDACTED, type StrategySpec } from './strategies.js';

/**
 * Masking one value as PostgreSQL sends it: text or binary format, of some
 * type. Strategies produce text, so they apply as such only to string types,
 * whose binary format is their UTF-8 text too; a masked value of any other
 * type becomes NULL, the one replacement valid for every type and format.
 */
const STRING_TYPES: ReadonlySet<number> = new Set([
  25, // text
  1043, // varchar
  1042, // bpchar
  19, // name
  705, // unknown (string literals)
]);
const BYTEA = 17;
/** Binary formats that are numbers, times, booleans or UUIDs: no text inside for a detector to find. */
const FIXED_BINARY: ReadonlySet<number> = new Set([16, 20, 21, 23, 26, 700, 701, 790, 1082, 1083, 1114, 1184, 1186, 1266, 1700, 2950]);
const REDACTED_BYTES = Buffer.from(REDACTED);

export interface CellDetectors {
  readonly names: ReadonlySet<DetectorName>;
  readonly spec: StrategySpec;
}

/** The masked value of a masked column: null for SQL NULL. */
export function maskCell(value: Buffer, typeOid: number, spec: StrategySpec, key: Buffer): Buffer | null {
  if (!STRING_TYPES.has(typeOid) || spec.strategy === 'null') return null;
  // The replacements are shared, never written to: callers copy them into the rows they build.
  if (spec.strategy === 'redact') return REDACTED_BYTES;
  if (spec.strategy === 'hash') return hashBytes(value, key);
  const out = maskText(value.toString('utf8'), spec, key);
  return out === null ? null : Buffer.from(out, 'utf8');
}

/** What stands for any value of a column whose layout or origin is unknown, or a whole result masked. */
export function maskUnknown(typeOid: number | undefined): Buffer | null {
  return typeOid !== undefined && STRING_TYPES.has(typeOid) ? REDACTED_BYTES : null;
}

/**
 * Detectors over one value; undefined when nothing was found. Text-format
 * values of every type but bytea are text; in binary format only string
 * types are. A value over `maxBytes` is not scanned: it is masked whole.
 */
export function detectCell(value: Buffer, typeOid: number, format: number, d: CellDetectors, key: Buffer, maxBytes: number): Buffer | null | undefined {
  if (typeOid === BYTEA || (format === 1 && FIXED_BINARY.has(typeOid))) return undefined;
  if (value.length > maxBytes) return maskCell(value, typeOid, d.spec, key);
  if (format === 1 && !STRING_TYPES.has(typeOid)) {
    // jsonb, arrays, records, xml in binary carry their text among framing bytes: any match makes the value NULL.
    return findSensitive(value.toString('utf8'), d.names).length > 0 ? null : undefined;
  }
  const text = value.toString('utf8');
  const out = maskDetected(text, d.names, d.spec, key);
  if (out === text) return undefined;
  if (out === null) return null;
  // Inside json, numbers or arrays a replacement token could break the value's syntax: those become NULL.
  return STRING_TYPES.has(typeOid) ? Buffer.from(out, 'utf8') : null;
}
