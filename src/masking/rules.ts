import type { MaskingConfig, PolicyConfig } from '../config/schema.js';
import type { Principal } from '../identity/principal.js';
import { matchesPrincipal } from '../policy/match.js';
import type { DetectorName } from './detectors.js';
import type { MaskStrategy, StrategySpec } from './strategies.js';

export interface ColumnRule {
  /** schema.table.column, lower-cased, `*` globs within one name. */
  readonly pattern: string;
  readonly spec: StrategySpec;
  readonly policy: string;
}

export interface DetectorRule {
  readonly names: ReadonlySet<DetectorName>;
  /** Column patterns the detectors are limited to; undefined: every text value. */
  readonly columns?: readonly string[];
  readonly spec: StrategySpec;
}

/** What masking means for one session: every masking policy that covers its principal and resource, merged. */
export interface MaskingPlan {
  readonly policies: readonly string[];
  readonly columns: readonly ColumnRule[];
  readonly detectors?: DetectorRule;
  /** Allow-listed user-defined functions (function patterns). */
  readonly functions: readonly string[];
  readonly indirect: 'deny' | 'mask';
  readonly notifications: 'redact' | 'detect';
  readonly maxValueBytes: number;
}

/** Stricter strategies win when two rules mask the same column: nothing shown beats a token beats a hash beats a tail. */
const STRICTNESS: Record<MaskStrategy, number> = { null: 3, redact: 2, hash: 1, partial: 0 };

export function stricter(a: StrategySpec, b: StrategySpec): StrategySpec {
  if (STRICTNESS[a.strategy] !== STRICTNESS[b.strategy]) return STRICTNESS[a.strategy] > STRICTNESS[b.strategy] ? a : b;
  return (a.keepLast ?? 4) <= (b.keepLast ?? 4) ? a : b;
}

function appliesTo(p: PolicyConfig, m: MaskingConfig, principal: Principal, resource: string): boolean {
  if (!p.resources || !(p.resources.includes(resource) || p.resources.includes('*'))) return false;
  const everyone = Object.keys(p.when).length === 0;
  if (!everyone && !matchesPrincipal(p.when, principal)) return false;
  return !m.exempt.some((e) => matchesPrincipal(e, principal));
}

/**
 * The masking plan of a principal on a resource, or undefined when no
 * masking policy covers them (the relay then forwards results untouched).
 * Several policies add up: every column and detector of each applies, and
 * the stricter of two choices wins.
 */
export function maskingPlanFor(policies: readonly PolicyConfig[], principal: Principal, resource: string): MaskingPlan | undefined {
  const covering = policies.filter((p): p is PolicyConfig & { masking: MaskingConfig } => p.masking !== undefined && appliesTo(p, p.masking, principal, resource));
  if (covering.length === 0) return undefined;
  const columns: ColumnRule[] = [];
  const names = new Set<DetectorName>();
  let detectorColumns: string[] | undefined = [];
  let detectorSpec: StrategySpec | undefined;
  const functions: string[] = [];
  let indirect: 'deny' | 'mask' = 'mask';
  let notifications: 'redact' | 'detect' = 'detect';
  let maxValueBytes = Number.MAX_SAFE_INTEGER;
  for (const p of covering) {
    const m = p.masking;
    for (const c of m.columns) {
      for (const pattern of c.match) columns.push({ pattern: pattern.toLowerCase(), spec: { strategy: c.strategy, keepLast: c.keep_last }, policy: p.name });
    }
    if (m.detectors) {
      for (const n of m.detectors.names) names.add(n);
      if (m.detectors.columns === undefined) detectorColumns = undefined;
      else detectorColumns?.push(...m.detectors.columns.map((c) => c.toLowerCase()));
      const spec: StrategySpec = { strategy: m.detectors.strategy, keepLast: m.detectors.keep_last };
      detectorSpec = detectorSpec ? stricter(detectorSpec, spec) : spec;
    }
    functions.push(...(m.functions ?? []));
    if (m.indirect === 'deny') indirect = 'deny';
    if (m.notifications === 'redact') notifications = 'redact';
    maxValueBytes = Math.min(maxValueBytes, m.max_value_bytes);
  }
  return {
    policies: covering.map((p) => p.name).sort(),
    columns,
    ...(detectorSpec ? { detectors: { names, ...(detectorColumns ? { columns: detectorColumns } : {}), spec: detectorSpec } } : {}),
    functions,
    indirect,
    notifications,
    maxValueBytes,
  };
}

/** A plan's identity, to tell whether a reload changed what a session must mask. */
export function maskingPlanKey(plan: MaskingPlan | undefined): string {
  return plan === undefined ? '' : JSON.stringify(plan, (_k, v: unknown) => (v instanceof Set ? [...v].sort() : v));
}
