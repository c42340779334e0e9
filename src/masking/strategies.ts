import { KeyedHash } from './keyed-hash.js';

export type MaskStrategy = 'redact' | 'partial' | 'hash' | 'null';

export const MASK_STRATEGIES: readonly MaskStrategy[] = Object.freeze(['redact', 'partial', 'hash', 'null']);

export interface StrategySpec {
  readonly strategy: MaskStrategy;
  /** partial: characters (code points) kept at the end (default 4) */
  readonly keepLast?: number;
}

export const REDACTED = '[masked]';

const PARTIAL_PREFIX = '****';
const DEFAULT_KEEP_LAST = 4;

const keyedHashes = new WeakMap<Buffer, KeyedHash>();

/** The hash strategy over bytes: the same output as maskText for their UTF-8 text, without decoding them. */
export function hashBytes(value: Buffer, hashKey: Buffer): Buffer {
  let h = keyedHashes.get(hashKey);
  if (!h) keyedHashes.set(hashKey, (h = new KeyedHash(hashKey)));
  return h.hex16(value);
}

/** Masks one whole text value; null only for strategy null. */
export function maskText(value: string, spec: StrategySpec, hashKey: Buffer): string | null {
  switch (spec.strategy) {
    case 'redact':
      return REDACTED;
    case 'null':
      return null;
    case 'partial':
      return partial(value, spec.keepLast);
    case 'hash':
      return hashBytes(Buffer.from(value, 'utf8'), hashKey).toString('latin1');
  }
}

function partial(value: string, keepLastOption: number | undefined): string {
  // A bad keepLast must not reveal more than intended, so it degrades to keeping nothing.
  const raw = keepLastOption ?? DEFAULT_KEEP_LAST;
  const keepLast = Number.isFinite(raw) && raw > 0 ? Math.floor(raw) : 0;
  if (keepLast === 0 || value.length <= keepLast) return PARTIAL_PREFIX;
  let i = value.length;
  let kept = 0;
  while (kept < keepLast && i > 0) {
    i--;
    if (i > 0 && isLowSurrogate(value.charCodeAt(i)) && isHighSurrogate(value.charCodeAt(i - 1))) i--;
    kept++;
  }
  // Reaching the start means the value has keepLast code points or fewer: showing them all would unmask it.
  if (i === 0) return PARTIAL_PREFIX;
  return PARTIAL_PREFIX + value.slice(i);
}

function isHighSurrogate(c: number): boolean {
  return c >= 0xd800 && c <= 0xdbff;
}

function isLowSurrogate(c: number): boolean {
  return c >= 0xdc00 && c <= 0xdfff;
}
