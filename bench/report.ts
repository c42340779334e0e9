import type { MachineInfo } from './machine.js';
import type { BenchOptions } from './options.js';
import type { MetricColumn, RatioSpec, Sample, TableSpec, Variant } from './scenario.js';
import { median, spread } from './stats.js';
import type { Target, TargetKind } from './targets.js';

export interface Summary {
  readonly median: number;
  /** Half-range over median; undefined with one sample. */
  readonly spread?: number;
  readonly samples: number;
}

export type RatioBase = 'direct' | 'pgbouncer' | 'sluice-none';

export interface ReportRow {
  readonly variant: Readonly<Record<string, string>>;
  readonly target: { readonly name: string; readonly label: string; readonly kind: TargetKind; readonly layers?: readonly string[] };
  /** Absent when the target was unavailable or every run failed. */
  readonly metrics?: Readonly<Record<string, Summary | undefined>>;
  /** "unavailable: …", "failed: …", or a note about failed repetitions. */
  readonly status?: string;
  /** This row's ratio metric over the same variant's row of each base. */
  readonly ratios: Partial<Record<RatioBase, number>>;
}

export interface ReportTable {
  readonly scenario: number;
  readonly title: string;
  readonly description: string;
  readonly variantColumns: readonly string[];
  readonly metrics: readonly MetricColumn[];
  readonly ratio?: RatioSpec;
  readonly ratioBases: readonly RatioBase[];
  readonly rows: readonly ReportRow[];
}

export interface SluiceConfigReport {
  readonly name: string;
  readonly label: string;
  readonly layers: readonly string[];
  /** Settings that differ from the shipped defaults, values as shown (run-specific ports and paths as placeholders). */
  readonly settings: readonly { readonly path: string; readonly value: string; readonly defaultValue?: string }[];
  readonly unavailable?: string;
}

export interface GoalStatus {
  readonly goal: string;
  readonly verdict: 'met' | 'not met' | 'not measured';
  readonly detail: string;
}

export interface BenchReport {
  readonly command: string;
  readonly startedAt: string;
  readonly elapsedS: number;
  readonly machine: MachineInfo;
  readonly options: BenchOptions;
  readonly tables: readonly ReportTable[];
  readonly sluiceConfigs: readonly SluiceConfigReport[];
  readonly goals: readonly GoalStatus[];
}

/** Samples and errors of one (measurement, variant, target) cell across repetitions. */
export interface Cell {
  readonly samples: Sample[];
  readonly errors: string[];
}

export const cellKey = (measurement: string, variant: string, target: string) => `${measurement}|${variant}|${target}`;

function summarize(samples: readonly Sample[], key: string): Summary | undefined {
  const values = samples.map((s) => s[key]).filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
  if (values.length === 0) return undefined;
  return { median: median(values), spread: spread(values), samples: values.length };
}

export function buildTable(
  spec: TableSpec,
  opts: BenchOptions,
  variants: readonly Variant[],
  subjects: readonly Target[],
  cells: ReadonlyMap<string, Cell>,
): ReportTable {
  const targets = subjects.filter((t) => spec.includes(t));
  const rows: ReportRow[] = [];
  const medianOf = (variant: string, target: string): number | undefined => {
    if (!spec.ratio) return undefined;
    const cell = cells.get(cellKey(spec.measurement.id, variant, target));
    return cell ? summarize(cell.samples, spec.ratio.metric)?.median : undefined;
  };
  const sluiceRows = targets.filter((t) => t.kind === 'sluice').length;
  const ratioBases = spec.ratio
    ? (['direct', 'pgbouncer', 'sluice-none'] as const).filter(
        (b) => targets.some((t) => t.name === b && !t.unavailable) && (b !== 'sluice-none' || sluiceRows > 1),
      )
    : [];
  const rowTarget = (t: Target) => ({ name: t.name, label: t.label, kind: t.kind, layers: t.sluice?.layers });
  for (const v of variants) {
    for (const t of targets) {
      if (t.unavailable) continue;
      const target = rowTarget(t);
      const cell = cells.get(cellKey(spec.measurement.id, v.key, t.name)) ?? { samples: [], errors: [] };
      if (cell.samples.length === 0) {
        rows.push({ variant: v.labels, target, status: cell.errors.length ? `failed: ${cell.errors[0]}` : 'not run', ratios: {} });
        continue;
      }
      const metrics = Object.fromEntries(spec.metrics.map((m) => [m.key, summarize(cell.samples, m.key)]));
      const ratios: Partial<Record<RatioBase, number>> = {};
      if (spec.ratio && t.kind === 'sluice') {
        const mine = metrics[spec.ratio.metric]?.median;
        for (const b of ratioBases) {
          const base = b === t.name ? undefined : medianOf(v.key, b);
          if (mine !== undefined && base) ratios[b] = mine / base;
        }
      }
      const status = cell.errors.length ? `${cell.errors.length} of ${cell.errors.length + cell.samples.length} runs failed: ${cell.errors[0]}` : undefined;
      rows.push({ variant: v.labels, target, metrics, status, ratios });
    }
  }
  // One row per unavailable target, not one per variant: the reason is the same for all.
  const variantColumns = variants.length ? Object.keys(variants[0].labels) : [];
  for (const t of targets.filter((x) => x.unavailable)) {
    const all = Object.fromEntries(variantColumns.map((c) => [c, 'all']));
    rows.push({ variant: all, target: rowTarget(t), status: `unavailable: ${t.unavailable}`, ratios: {} });
  }
  return {
    scenario: spec.scenario,
    title: spec.title,
    description: spec.describe(opts),
    variantColumns,
    metrics: spec.metrics,
    ratio: spec.ratio,
    ratioBases,
    rows,
  };
}
