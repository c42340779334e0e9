import { baseColumns, type CatalogSnapshot } from './catalog.js';
import { columnMatches } from './column-patterns.js';
import { stricter, type MaskingPlan } from './rules.js';
import type { StrategySpec } from './strategies.js';

/**
 * A session's masking plan applied to a resource's catalog: which relation
 * columns are masked (by OID and attribute number, as RowDescription names
 * them), views included through their lineage, so an alias or a view never
 * hides a masked column.
 */
export interface MaskedColumns {
  readonly plan: MaskingPlan;
  readonly catalog: CatalogSnapshot;
  /** relation OID -> attnum -> strategy. */
  readonly byOid: ReadonlyMap<number, ReadonlyMap<number, StrategySpec>>;
  /** Columns the detectors are limited to, when the plan limits them. */
  readonly detectorOids?: ReadonlyMap<number, ReadonlySet<number>>;
}

export function resolveMasking(plan: MaskingPlan, catalog: CatalogSnapshot): MaskedColumns {
  const direct = new Map<number, Map<number, StrategySpec>>();
  const detectorDirect = plan.detectors?.columns ? new Map<number, Set<number>>() : undefined;
  for (const rel of catalog.relations.values()) {
    for (const [attnum, col] of rel.columns) {
      for (const rule of plan.columns) {
        if (!columnMatches(rule.pattern, rel.schema, rel.name, col.name)) continue;
        const cols = direct.get(rel.oid) ?? new Map<number, StrategySpec>();
        const prev = cols.get(attnum);
        cols.set(attnum, prev ? stricter(prev, rule.spec) : rule.spec);
        direct.set(rel.oid, cols);
      }
      if (detectorDirect && plan.detectors?.columns?.some((p) => columnMatches(p, rel.schema, rel.name, col.name))) {
        const set = detectorDirect.get(rel.oid) ?? new Set<number>();
        set.add(attnum);
        detectorDirect.set(rel.oid, set);
      }
    }
  }
  const byOid = new Map<number, Map<number, StrategySpec>>();
  const detectorOids = detectorDirect ? new Map<number, Set<number>>() : undefined;
  for (const rel of catalog.relations.values()) {
    for (const attnum of rel.columns.keys()) {
      // A view column is masked when any column it is computed from is, with the strictest of their strategies.
      let spec: StrategySpec | undefined;
      let detect = false;
      for (const b of baseColumns(catalog, rel.oid, attnum)) {
        const s = direct.get(b.relation)?.get(b.attnum);
        if (s) spec = spec ? stricter(spec, s) : s;
        if (detectorDirect?.get(b.relation)?.has(b.attnum)) detect = true;
      }
      const own = direct.get(rel.oid)?.get(attnum);
      if (own) spec = spec ? stricter(spec, own) : own;
      if (spec) {
        const cols = byOid.get(rel.oid) ?? new Map<number, StrategySpec>();
        cols.set(attnum, spec);
        byOid.set(rel.oid, cols);
      }
      if (detectorOids && (detect || detectorDirect?.get(rel.oid)?.has(attnum))) {
        const set = detectorOids.get(rel.oid) ?? new Set<number>();
        set.add(attnum);
        detectorOids.set(rel.oid, set);
      }
    }
  }
  return { plan, catalog, byOid, ...(detectorOids ? { detectorOids } : {}) };
}

export function maskedSpec(m: MaskedColumns, relation: number, attnum: number): StrategySpec | undefined {
  return m.byOid.get(relation)?.get(attnum);
}
