import { maskText, REDACTED, type StrategySpec } from './strategies.js';

export type DetectorName =
  | 'email'
  | 'payment_card'
  | 'iban'
  | 'us_ssn'
  | 'phone'
  | 'jwt'
  | 'aws_access_key'
  | 'private_key'
  | 'api_key';

export const DETECTOR_NAMES: readonly DetectorName[] = Object.freeze([
  'email',
  'payment_card',
  'iban',
  'us_ssn',
  'phone',
  'jwt',
  'aws_access_key',
  'private_key',
  'api_key',
]);

/** UTF-16 indices into the text, end exclusive. */
export interface DetectorMatch {
  readonly detector: DetectorName;
  readonly start: number;
  readonly end: number;
}

type Push = (start: number, end: number) => void;

/**
 * Every scanner is a linear pass (indexOf or one loop over the text, plus bounded
 * work per candidate) so that a hostile 20k-character cell costs no more than a
 * benign one; the regexes that remain start at literal prefixes behind a lookbehind.
 */
interface Detector {
  readonly name: DetectorName;
  readonly minLength: number;
  readonly minDigits: number;
  readonly prefilter?: (text: string) => boolean;
  readonly scan: (text: string, push: Push) => void;
}

const SPACE = 0x20;
const DASH = 0x2d;
const DOT = 0x2e;
const PLUS = 0x2b;
const OPEN_PAREN = 0x28;
const CLOSE_PAREN = 0x29;
const APOSTROPHE = 0x27;
const UNDERSCORE = 0x5f;
const PERCENT = 0x25;

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

function isAsciiLetter(c: number): boolean {
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
}

function isAsciiAlnum(c: number): boolean {
  return isDigit(c) || isAsciiLetter(c);
}

const NON_ASCII_WORD = /^[\p{L}\p{M}\p{N}]$/u;

/** Non-ASCII letters count so that internationalised addresses are masked too; surrogates never do. */
function isNonAsciiWordChar(c: number): boolean {
  return c >= 0x80 && NON_ASCII_WORD.test(String.fromCharCode(c));
}

function charAt(text: string, i: number): number {
  return i >= 0 && i < text.length ? text.charCodeAt(i) : -1;
}

// ---------------------------------------------------------------- email

function isLocalChar(c: number): boolean {
  return (
    isAsciiAlnum(c) ||
    c === DOT ||
    c === UNDERSCORE ||
    c === PERCENT ||
    c === PLUS ||
    c === DASH ||
    c === APOSTROPHE ||
    isNonAsciiWordChar(c)
  );
}

function isLabelChar(c: number): boolean {
  return isAsciiAlnum(c) || c === DASH || isNonAsciiWordChar(c);
}

function isTopLevelLabel(text: string, start: number, end: number): boolean {
  if (end - start < 2) return false;
  if (end - start >= 5 && text.slice(start, start + 4).toLowerCase() === 'xn--') return true;
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    if (!isAsciiLetter(c) && !isNonAsciiWordChar(c)) return false;
  }
  return true;
}

// `icon@2x.png` is an image asset name, not an address.
const RETINA_ASSET = /^\d+(?:\.\d+)?x\.(?:png|jpe?g|gif|webp|svg|avif|bmp|ico)$/i;

function scanEmail(text: string, push: Push): void {
  const n = text.length;
  let at = text.indexOf('@');
  while (at !== -1) {
    let start = at;
    while (start > 0 && isLocalChar(text.charCodeAt(start - 1))) start--;
    // A quote or dot before the name is punctuation around it, not part of it.
    while (start < at && (text.charCodeAt(start) === DOT || text.charCodeAt(start) === APOSTROPHE)) start++;
    if (start < at) {
      let end = -1;
      let labels = 0;
      let i = at + 1;
      for (;;) {
        const labelStart = i;
        while (i < n && isLabelChar(text.charCodeAt(i))) i++;
        const len = i - labelStart;
        if (len === 0 || len > 63) break;
        if (text.charCodeAt(labelStart) === DASH || text.charCodeAt(i - 1) === DASH) break;
        labels++;
        if (labels >= 2 && isTopLevelLabel(text, labelStart, i)) end = i;
        if (i + 1 < n && text.charCodeAt(i) === DOT && isLabelChar(text.charCodeAt(i + 1))) {
          i++;
          continue;
        }
        break;
      }
      if (end !== -1 && !RETINA_ASSET.test(text.slice(at + 1, end))) push(start, end);
    }
    at = text.indexOf('@', at + 1);
  }
}

// ---------------------------------------------------------------- payment card

function luhnValid(text: string, start: number, end: number): boolean {
  let sum = 0;
  let double = false;
  for (let i = end - 1; i >= start; i--) {
    const c = text.charCodeAt(i);
    if (!isDigit(c)) continue;
    let d = c - 0x30;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return sum % 10 === 0;
}

function scanPaymentCards(text: string, push: Push): void {
  const n = text.length;
  const starts: number[] = [];
  const ends: number[] = [];
  const seps: number[] = [];
  let i = 0;
  while (i < n) {
    if (!isDigit(text.charCodeAt(i))) {
      i++;
      continue;
    }
    // A chain: maximal digit runs joined by one space or dash each.
    starts.length = 0;
    ends.length = 0;
    seps.length = 0;
    let j = i;
    for (;;) {
      const groupStart = j;
      while (j < n && isDigit(text.charCodeAt(j))) j++;
      starts.push(groupStart);
      ends.push(j);
      const sep = charAt(text, j);
      if ((sep === SPACE || sep === DASH) && isDigit(charAt(text, j + 1))) {
        seps.push(sep);
        j++;
        continue;
      }
      break;
    }
    evaluateCardChain(text, starts, ends, seps, push);
    i = j;
  }
}

function evaluateCardChain(text: string, starts: number[], ends: number[], seps: number[], push: Push): void {
  const groups = starts.length;
  // Digits after `<digit>.` are a decimal fraction, digits before `.<digit>` an integer part: numbers, not cards.
  const decimalBefore = charAt(text, starts[0] - 1) === DOT && isDigit(charAt(text, starts[0] - 2));
  const last = groups - 1;
  const decimalAfter = charAt(text, ends[last]) === DOT && isDigit(charAt(text, ends[last] + 1));
  let s = 0;
  while (s < groups) {
    let found = -1;
    let e = s;
    let digits = ends[s] - starts[s];
    while (e + 1 < groups && digits + (ends[e + 1] - starts[e + 1]) <= 19) {
      e++;
      digits += ends[e] - starts[e];
    }
    for (; e >= s; e--) {
      if (digits >= 13 && digits <= 19 && isCardCandidate(text, starts, ends, seps, s, e)) {
        if (!(s === 0 && decimalBefore) && !(e === last && decimalAfter)) {
          found = e;
          break;
        }
      }
      digits -= ends[e] - starts[e];
      if (digits < 13) break;
    }
    if (found === -1) {
      s++;
    } else {
      push(starts[s], ends[found]);
      s = found + 1;
    }
  }
}

function isCardCandidate(
  text: string,
  starts: number[],
  ends: number[],
  seps: number[],
  s: number,
  e: number,
): boolean {
  // Issuers use major industry identifiers 2-6; this keeps 13-digit epoch milliseconds and similar ids out.
  const first = text.charCodeAt(starts[s]);
  if (first < 0x32 || first > 0x36) return false;
  if (e > s) {
    for (let g = s; g <= e; g++) {
      const len = ends[g] - starts[g];
      if (len < 3 || len > 6) return false;
      if (g > s && seps[g - 1] !== seps[s]) return false;
    }
  }
  return luhnValid(text, starts[s], ends[e]);
}

// ---------------------------------------------------------------- IBAN

function ibanValid(compact: string): boolean {
  const len = compact.length;
  if (len < 15 || len > 34) return false;
  const check = (compact.charCodeAt(2) - 0x30) * 10 + (compact.charCodeAt(3) - 0x30);
  if (check < 2 || check > 98) return false;
  let rem = 0;
  for (let k = 0; k < len; k++) {
    const c = compact.charCodeAt((k + 4) % len);
    if (isDigit(c)) {
      rem = (rem * 10 + (c - 0x30)) % 97;
    } else {
      const upper = c >= 0x61 ? c - 0x20 : c;
      rem = (rem * 100 + (upper - 55)) % 97;
    }
  }
  return rem === 1;
}

// The regex only locates candidates (it runs in native code, far faster than a JS loop per character).
const IBAN_START = /(?<![A-Za-z0-9])[A-Za-z]{2}[0-9]{2}/g;

function scanIbans(text: string, push: Push): void {
  const n = text.length;
  IBAN_START.lastIndex = 0;
  for (let m = IBAN_START.exec(text); m !== null; m = IBAN_START.exec(text)) {
    const i = m.index;
    let j = i + 4;
    while (j < n && isAsciiAlnum(text.charCodeAt(j))) j++;
    let next = j;
    if (j - i >= 15) {
      if (ibanValid(text.slice(i, j))) push(i, j);
    } else if (j === i + 4 && charAt(text, j) === SPACE) {
      const end = spacedIbanEnd(text, i);
      if (end !== -1) {
        push(i, end);
        next = end;
      }
    }
    IBAN_START.lastIndex = next;
  }
}

/** Printed form: groups of four separated by single spaces, the last group 1-4 characters. */
function spacedIbanEnd(text: string, start: number): number {
  const groupEnds = [start + 4];
  let compact = text.slice(start, start + 4);
  const compacts = [compact];
  let k = start + 4;
  while (compact.length < 34 && charAt(text, k) === SPACE && isAsciiAlnum(charAt(text, k + 1))) {
    let r = k + 1;
    while (r < text.length && isAsciiAlnum(text.charCodeAt(r))) r++;
    const len = r - (k + 1);
    if (len > 4) break;
    compact += text.slice(k + 1, r);
    groupEnds.push(r);
    compacts.push(compact);
    if (len < 4) break;
    k = r;
  }
  for (let g = groupEnds.length - 1; g > 0; g--) {
    if (ibanValid(compacts[g])) return groupEnds[g];
  }
  return -1;
}

// ---------------------------------------------------------------- US SSN

function digitsValue(text: string, start: number, count: number): number {
  let v = 0;
  for (let k = 0; k < count; k++) {
    const c = text.charCodeAt(start + k);
    if (!isDigit(c)) return -1;
    v = v * 10 + (c - 0x30);
  }
  return v;
}

const SSN_SHAPE = /(?<![0-9])[0-9]{3}([- ])[0-9]{2}\1[0-9]{4}(?![0-9])/g;

function scanSsns(text: string, push: Push): void {
  SSN_SHAPE.lastIndex = 0;
  for (let m = SSN_SHAPE.exec(text); m !== null; m = SSN_SHAPE.exec(text)) {
    const i = m.index;
    const sep = text.charCodeAt(i + 3);
    const area = digitsValue(text, i, 3);
    const group = digitsValue(text, i + 4, 2);
    const serial = digitsValue(text, i + 7, 4);
    // Part of a longer separated number (account numbers, phone numbers with a country prefix).
    const chained =
      (charAt(text, i - 1) === sep && isDigit(charAt(text, i - 2))) ||
      (charAt(text, i + 11) === sep && isDigit(charAt(text, i + 12)));
    if (chained || area === 0 || area === 666 || area >= 900 || group === 0 || serial === 0) {
      SSN_SHAPE.lastIndex = i + 1;
      continue;
    }
    push(i, i + 11);
  }
}

// ---------------------------------------------------------------- phone

function isPhoneSeparator(c: number): boolean {
  return c === SPACE || c === DASH || c === DOT || c === OPEN_PAREN || c === CLOSE_PAREN;
}

function scanE164(text: string, push: Push): void {
  const n = text.length;
  let p = text.indexOf('+');
  while (p !== -1) {
    const end = e164End(text, p, n);
    if (end !== -1) push(p, end);
    p = text.indexOf('+', end === -1 ? p + 1 : end);
  }
}

function e164End(text: string, p: number, n: number): number {
  if (isAsciiAlnum(charAt(text, p - 1))) return -1;
  let first = p + 1;
  if (charAt(text, first) === OPEN_PAREN) first++;
  const firstDigit = charAt(text, first);
  if (!isDigit(firstDigit) || firstDigit === 0x30) return -1;
  let digits = 0;
  let lastDigitEnd = -1;
  let sepRun = 0;
  let dots = 0;
  let otherSeps = 0;
  let i = first;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (isDigit(c)) {
      digits++;
      if (digits > 15) return -1;
      sepRun = 0;
      i++;
      lastDigitEnd = i;
    } else if (isPhoneSeparator(c) && sepRun < 2) {
      sepRun++;
      if (c === DOT) dots++;
      else otherSeps++;
      i++;
    } else {
      break;
    }
  }
  if (digits < 8 || isAsciiAlnum(charAt(text, lastDigitEnd))) return -1;
  // `+1234567.89` is a signed decimal; dotted phone numbers have several dots.
  if (dots === 1 && otherSeps === 0 && containsOneDotBetweenDigits(text, first, lastDigitEnd)) return -1;
  return lastDigitEnd;
}

function containsOneDotBetweenDigits(text: string, start: number, end: number): boolean {
  const dot = text.indexOf('.', start);
  return dot !== -1 && dot < end && isDigit(charAt(text, dot - 1)) && isDigit(charAt(text, dot + 1));
}

function isChainSeparator(c: number): boolean {
  return c === DASH || c === DOT || c === 0x2f || c === 0x3a || c === 0x2c;
}

const NORTH_AMERICAN_SHAPE = /\([0-9]{3}\) ?[0-9]{3}[-.][0-9]{4}|[0-9]{3}([-.])[0-9]{3}\1[0-9]{4}/g;

function scanNorthAmerican(text: string, push: Push): void {
  NORTH_AMERICAN_SHAPE.lastIndex = 0;
  for (let m = NORTH_AMERICAN_SHAPE.exec(text); m !== null; m = NORTH_AMERICAN_SHAPE.exec(text)) {
    const i = m.index;
    const end = i + m[0].length;
    let start = i;
    let ok = true;
    if (text.charCodeAt(i) === OPEN_PAREN) {
      ok = !isAsciiAlnum(charAt(text, i - 1));
    } else {
      const sep = text.charCodeAt(i + 3);
      const before = charAt(text, i - 1);
      if (
        before === sep &&
        charAt(text, i - 2) === 0x31 &&
        !isAsciiAlnum(charAt(text, i - 3)) &&
        !isChainSeparator(charAt(text, i - 3))
      ) {
        start = i - 2;
      } else if (isAsciiAlnum(before) || (isChainSeparator(before) && isDigit(charAt(text, i - 2)))) {
        ok = false;
      }
    }
    const after = charAt(text, end);
    if (isAsciiAlnum(after) || (isChainSeparator(after) && isDigit(charAt(text, end + 1)))) ok = false;
    if (ok) push(start, end);
    else NORTH_AMERICAN_SHAPE.lastIndex = i + 1;
  }
}

function scanPhones(text: string, push: Push): void {
  if (text.includes('+')) scanE164(text, push);
  scanNorthAmerican(text, push);
}

// ---------------------------------------------------------------- JWT

function isBase64UrlChar(c: number): boolean {
  return isAsciiAlnum(c) || c === DASH || c === UNDERSCORE;
}

function base64UrlRunEnd(text: string, i: number): number {
  while (i < text.length && isBase64UrlChar(text.charCodeAt(i))) i++;
  return i;
}

function isJsonObjectSegment(segment: string): boolean {
  try {
    const decoded: unknown = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
    return typeof decoded === 'object' && decoded !== null && !Array.isArray(decoded);
  } catch {
    return false;
  }
}

function scanJwts(text: string, push: Push): void {
  let p = text.indexOf('eyJ');
  while (p !== -1) {
    const before = charAt(text, p - 1);
    if (isBase64UrlChar(before) || before === DOT) {
      p = text.indexOf('eyJ', p + 1);
      continue;
    }
    const headerEnd = base64UrlRunEnd(text, p);
    const segmentEnds = [headerEnd];
    let j = headerEnd;
    // Three segments for a JWS, five for a JWE.
    while (segmentEnds.length < 5 && charAt(text, j) === DOT) {
      j = base64UrlRunEnd(text, j + 1);
      segmentEnds.push(j);
    }
    while (segmentEnds.length > 3 && segmentEnds[segmentEnds.length - 1] === segmentEnds[segmentEnds.length - 2] + 1) {
      segmentEnds.pop();
    }
    const payloadLength = segmentEnds.length >= 2 ? segmentEnds[1] - headerEnd - 1 : 0;
    if (
      segmentEnds.length >= 3 &&
      headerEnd - p >= 10 &&
      payloadLength >= 2 &&
      isJsonObjectSegment(text.slice(p, headerEnd))
    ) {
      const end = segmentEnds[segmentEnds.length - 1];
      push(p, end);
      p = text.indexOf('eyJ', end);
    } else {
      p = text.indexOf('eyJ', headerEnd);
    }
  }
}

// ---------------------------------------------------------------- AWS access key

const AWS_ACCESS_KEY = /(?<![A-Za-z0-9])(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}(?![A-Za-z0-9])/g;

function scanRegex(re: RegExp, text: string, push: Push, accept?: (m: string) => boolean): void {
  re.lastIndex = 0;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    if (accept === undefined || accept(m[0])) push(m.index, m.index + m[0].length);
  }
}

// ---------------------------------------------------------------- private key

const BEGIN_MARKER = '-----BEGIN ';
const PRIVATE_KEY_LABEL = /^[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?$/;

function scanPrivateKeys(text: string, push: Push): void {
  let p = text.indexOf(BEGIN_MARKER);
  while (p !== -1) {
    const labelStart = p + BEGIN_MARKER.length;
    const labelEnd = text.indexOf('-----', labelStart);
    if (labelEnd === -1) return;
    const label = text.slice(labelStart, labelEnd);
    if (label.length <= 60 && PRIVATE_KEY_LABEL.test(label)) {
      const endMarker = `-----END ${label}-----`;
      const endAt = text.indexOf(endMarker, labelEnd + 5);
      // Without its END line the key body runs to the end of the value: mask all of it.
      const end = endAt === -1 ? text.length : endAt + endMarker.length;
      push(p, end);
      p = text.indexOf(BEGIN_MARKER, end);
    } else {
      p = text.indexOf(BEGIN_MARKER, p + 1);
    }
  }
}

// ---------------------------------------------------------------- API keys

const API_KEY =
  /(?<![A-Za-z0-9_-])(?:gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{22,}|xox[abposr]-[A-Za-z0-9-]{10,}|(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}|AIza[A-Za-z0-9_-]{35}|sk-[A-Za-z0-9_-]{32,}|npm_[A-Za-z0-9]{36}|glpat-[A-Za-z0-9_-]{20,})(?![A-Za-z0-9_-])/g;

const LONG_ALNUM_RUN = /[A-Za-z0-9]{20}/;

/**
 * `sk-` also starts long kebab-case slugs; real keys are random, so they contain digits and
 * letters and a long run without separators.
 */
function plausibleApiKey(token: string): boolean {
  if (token.startsWith('sk-')) {
    const body = token.slice(3);
    return /[0-9]/.test(body) && /[A-Za-z]/.test(body) && LONG_ALNUM_RUN.test(body);
  }
  if (token.startsWith('xox')) return /[0-9]/.test(token);
  return true;
}

function hasApiKeyMarker(text: string): boolean {
  return text.includes('_') || text.includes('-') || text.includes('AIza');
}

// ---------------------------------------------------------------- registry

const DETECTORS: readonly Detector[] = [
  { name: 'email', minLength: 6, minDigits: 0, prefilter: (t) => t.includes('@'), scan: scanEmail },
  { name: 'payment_card', minLength: 13, minDigits: 13, scan: scanPaymentCards },
  { name: 'iban', minLength: 15, minDigits: 2, scan: scanIbans },
  { name: 'us_ssn', minLength: 11, minDigits: 9, scan: scanSsns },
  { name: 'phone', minLength: 9, minDigits: 8, scan: scanPhones },
  { name: 'jwt', minLength: 16, minDigits: 0, prefilter: (t) => t.includes('eyJ'), scan: scanJwts },
  {
    name: 'aws_access_key',
    minLength: 20,
    minDigits: 0,
    prefilter: (t) => t.includes('A'),
    scan: (t, push) => scanRegex(AWS_ACCESS_KEY, t, push),
  },
  {
    name: 'private_key',
    minLength: 30,
    minDigits: 0,
    prefilter: (t) => t.includes(BEGIN_MARKER),
    scan: scanPrivateKeys,
  },
  {
    name: 'api_key',
    minLength: 15,
    minDigits: 0,
    prefilter: hasApiKeyMarker,
    scan: (t, push) => scanRegex(API_KEY, t, push, plausibleApiKey),
  },
];

const MIN_DETECTABLE_LENGTH = Math.min(...DETECTORS.map((d) => d.minLength));
const MAX_DIGITS_NEEDED = Math.max(...DETECTORS.map((d) => d.minDigits));

function countDigits(text: string, cap: number): number {
  let count = 0;
  for (let i = 0; i < text.length && count < cap; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0x30 && c <= 0x39) count++;
  }
  return count;
}

/** Sensitive substrings of `text`, sorted by start, non-overlapping (on overlap keep the longer / earlier). */
export function findSensitive(text: string, enabled: ReadonlySet<DetectorName>): DetectorMatch[] {
  if (text.length < MIN_DETECTABLE_LENGTH || enabled.size === 0) return [];
  const found: DetectorMatch[] = [];
  let digits = -1;
  for (const detector of DETECTORS) {
    if (!enabled.has(detector.name) || text.length < detector.minLength) continue;
    if (detector.minDigits > 0) {
      if (digits === -1) digits = countDigits(text, MAX_DIGITS_NEEDED);
      if (digits < detector.minDigits) continue;
    }
    if (detector.prefilter !== undefined && !detector.prefilter(text)) continue;
    const name = detector.name;
    detector.scan(text, (start, end) => found.push({ detector: name, start, end }));
  }
  return resolveOverlaps(found);
}

function resolveOverlaps(found: DetectorMatch[]): DetectorMatch[] {
  if (found.length <= 1) return found;
  found.sort((a, b) => a.start - b.start || b.end - b.start - (a.end - a.start));
  let overlapping = false;
  for (let k = 1; k < found.length; k++) {
    if (found[k].start < found[k - 1].end) {
      overlapping = true;
      break;
    }
  }
  if (!overlapping) return found;
  const byPreference = [...found].sort((a, b) => b.end - b.start - (a.end - a.start) || a.start - b.start);
  const kept: DetectorMatch[] = [];
  for (const m of byPreference) {
    const at = firstEndingAfter(kept, m.start);
    if (at < kept.length && kept[at].start < m.end) continue;
    kept.splice(at, 0, m);
  }
  return kept;
}

/** Index of the first kept match (sorted, disjoint) whose end lies after `position`. */
function firstEndingAfter(kept: DetectorMatch[], position: number): number {
  let lo = 0;
  let hi = kept.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (kept[mid].end <= position) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

// Masking can expose a match its context used to rule out (a card after `<digit>.` once that
// digit is masked away), so masking repeats on its own output; after this many rounds the whole value goes.
const MAX_MASK_ROUNDS = 4;

/**
 * The text with every match replaced: redact -> `[masked:<detector>]`, partial/hash -> maskText(substring, spec, key);
 * strategy null -> the whole value becomes null when anything matched. Returns the same string instance when nothing matched.
 */
export function maskDetected(
  text: string,
  enabled: ReadonlySet<DetectorName>,
  spec: StrategySpec,
  hashKey: Buffer,
): string | null {
  let matches = findSensitive(text, enabled);
  if (matches.length === 0) return text;
  if (spec.strategy === 'null') return null;
  let current = text;
  for (let round = 0; round < MAX_MASK_ROUNDS; round++) {
    current = replaceMatches(current, matches, spec, hashKey);
    matches = findSensitive(current, enabled);
    if (matches.length === 0) return current;
  }
  return REDACTED;
}

function replaceMatches(text: string, matches: readonly DetectorMatch[], spec: StrategySpec, hashKey: Buffer): string {
  let out = '';
  let last = 0;
  for (const m of matches) {
    out += text.slice(last, m.start);
    out +=
      spec.strategy === 'redact'
        ? `[masked:${m.detector}]`
        : (maskText(text.slice(m.start, m.end), spec, hashKey) ?? REDACTED);
    last = m.end;
  }
  return out + text.slice(last);
}
