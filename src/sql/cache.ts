import type { Classification, ClassifyLimits } from './classify.js';
import { classify } from './classify.js';

/** Rough per-entry cost of a Classification beyond its strings (objects, arrays, map entry). */
const ENTRY_OVERHEAD = 256;

function estimateBytes(key: string, value: Classification): number {
  let bytes = ENTRY_OVERHEAD + key.length * 2;
  if (!value.ok) return bytes + value.message.length * 2;
  for (const s of value.statements) {
    bytes += ENTRY_OVERHEAD + s.text.length * 2;
    for (const list of [s.tablesRead, s.tablesWritten, s.functions, s.effects]) for (const item of list) bytes += 32 + item.length * 2;
    for (const c of s.columns) bytes += 64 + (c.column.length + (c.table?.length ?? 0)) * 2;
    if (s.body) bytes += ENTRY_OVERHEAD + s.body.text.length * 2;
  }
  return bytes;
}

/**
 * Least-recently-used cache of classifications keyed by exact statement text,
 * bounded by an estimate of the memory it holds rather than by entry count,
 * so a few huge statements cannot crowd the process.
 */
export class ClassificationCache {
  private readonly entries = new Map<string, { value: Classification; bytes: number }>();
  private used = 0;

  constructor(readonly maxBytes: number) {}

  get size(): number {
    return this.entries.size;
  }

  get bytes(): number {
    return this.used;
  }

  get(key: string): Classification | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    this.entries.delete(key);
    this.entries.set(key, entry);
    return entry.value;
  }

  set(key: string, value: Classification): void {
    const bytes = estimateBytes(key, value);
    const old = this.entries.get(key);
    if (old) {
      this.entries.delete(key);
      this.used -= old.bytes;
    }
    if (bytes > this.maxBytes) return;
    this.entries.set(key, { value, bytes });
    this.used += bytes;
    for (const [k, e] of this.entries) {
      if (this.used <= this.maxBytes) break;
      this.entries.delete(k);
      this.used -= e.bytes;
    }
  }
}

export const DEFAULT_CACHE_BYTES = 32 * 1024 * 1024;

let shared: ClassificationCache | undefined;

/**
 * classify() through a process-wide cache. Results are shared objects: treat
 * them as read-only. Only results for the default limits are cached, since
 * the limits decide the outcome.
 */
export function classifyCached(sql: string, limits?: ClassifyLimits, cache?: ClassificationCache): Classification {
  if (limits && (limits.maxBytes !== undefined || limits.maxDepth !== undefined) && !cache) return classify(sql, limits);
  const store = cache ?? (shared ??= new ClassificationCache(DEFAULT_CACHE_BYTES));
  const hit = store.get(sql);
  if (hit) return hit;
  const result = classify(sql, limits);
  store.set(sql, result);
  return result;
}
