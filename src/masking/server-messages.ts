import { maskDetected, type DetectorName } from './detectors.js';
import { REDACTED, type StrategySpec } from './strategies.js';

/**
 * Values PostgreSQL echoes in errors and notices: a unique violation says
 * `Key (email)=(alice@example.com) already exists`, a failed cast says
 * `invalid input syntax for type integer: "alice@example.com"`, and code in
 * functions and triggers can RAISE anything. For a masked session these
 * parts are replaced; the SQLSTATE and the server's wording stay, so the
 * client still learns what went wrong. Pure.
 */
export const MASKED_TEXT = '[masked by Sluice: may contain row values]';

/** Message endings that quote an input value: `...: "value"`. */
const QUOTED_VALUE_END = /^(.*?: )"(.*)"$/s;
const OUT_OF_RANGE = /^value "(.*)" is out of range/s;
/** Details that list row or key values. */
const VALUE_DETAIL = /\)=\(|^Failing row contains |^Key \(|^Array contains |^Token "/s;

export interface MessageMasking {
  readonly detectors?: { readonly names: ReadonlySet<DetectorName>; readonly spec: StrategySpec };
  readonly key: Buffer;
}

export type ErrorField = readonly [code: string, value: string];

/**
 * The fields of an ErrorResponse or NoticeResponse with echoed values
 * masked; the same array when nothing changed. `computed`: the statement
 * computes over masked columns (indirect: mask), so any part of the message
 * may quote a masked value, not only the places PostgreSQL usually does.
 */
export function maskServerFields(fields: readonly ErrorField[], m: MessageMasking, computed = false): readonly ErrorField[] {
  const sqlstate = fields.find(([c]) => c === 'C')?.[1] ?? '';
  const where = fields.find(([c]) => c === 'W')?.[1] ?? '';
  // RAISE in a function or trigger composes its text from anything the code read, masked columns included.
  const userText = computed || sqlstate.startsWith('P0') || /function|trigger/i.test(where);
  let changed = false;
  const out = fields.map(([code, value]): ErrorField => {
    const next = maskField(code, value, userText, m);
    if (next !== value) changed = true;
    return [code, next];
  });
  return changed ? out : fields;
}

function maskField(code: string, value: string, userText: boolean, m: MessageMasking): string {
  switch (code) {
    case 'M':
      if (userText) return MASKED_TEXT;
      if (OUT_OF_RANGE.test(value)) return value.replace(OUT_OF_RANGE, `value "${REDACTED}" is out of range`);
      if (QUOTED_VALUE_END.test(value)) return value.replace(QUOTED_VALUE_END, `$1"${REDACTED}"`);
      return detect(value, m);
    case 'D':
    case 'H':
      if (userText || (code === 'D' && VALUE_DETAIL.test(value))) return MASKED_TEXT;
      return detect(value, m);
    case 'W':
    case 'q':
      // Context lines and internal queries can quote parameter values and row data.
      return userText || /\$\d|=\(|"/.test(value) ? MASKED_TEXT : detect(value, m);
    default:
      return value;
  }
}

function detect(value: string, m: MessageMasking): string {
  if (!m.detectors) return value;
  return maskDetected(value, m.detectors.names, m.detectors.spec, m.key) ?? MASKED_TEXT;
}

/** A NOTIFY payload for a masked session: redacted whole, or through the detectors. */
export function maskNotificationPayload(payload: string, mode: 'redact' | 'detect', m: MessageMasking): string {
  if (payload === '') return payload;
  // Detect mode without detectors would pass payloads raw: redact instead.
  if (mode === 'redact' || !m.detectors) return REDACTED;
  return detect(payload, m);
}
