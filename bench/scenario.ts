import type { BenchDatabase } from './database.js';
import type { BenchOptions, ScenarioId } from './options.js';
import type { Target } from './targets.js';

export interface BenchContext {
  readonly opts: BenchOptions;
  readonly db: BenchDatabase;
  readonly root: string;
  readonly workDir: string;
  readonly targets: readonly Target[];
  readonly log: (msg: string) => void;
}

/** One combination of settings a measurement is repeated for (transport, protocol, query, …). */
export interface Variant {
  readonly key: string;
  /** Column name → value, shown before the target column. */
  readonly labels: Readonly<Record<string, string>>;
}

export type Sample = Readonly<Record<string, number | undefined>>;

/**
 * A kind of measurement. Tables (one per scenario) are views over its
 * samples, so scenarios 1 and 2 share the pgbench -S runs.
 */
export interface Measurement {
  readonly id: string;
  /** Cap on repetitions for a slow measurement whose result varies little. */
  readonly maxReps?: number;
  /** Runs once before the repetitions (scripts, tables). */
  prepare?(ctx: BenchContext): Promise<void>;
  variants(ctx: BenchContext): Variant[];
  /** Targets this measurement runs against, in report order. */
  subjects(ctx: BenchContext): Target[] | Promise<Target[]>;
  run(ctx: BenchContext, variant: Variant, target: Target): Promise<Sample>;
}

export interface MetricColumn {
  readonly key: string;
  readonly header: string;
  readonly digits: number;
}

export interface RatioSpec {
  readonly metric: string;
  /** For the legend: whether a ratio above 1.0 is good. */
  readonly higherIsBetter: boolean;
}

export interface TableSpec {
  readonly scenario: ScenarioId;
  readonly title: string;
  readonly measurement: Measurement;
  describe(opts: BenchOptions): string;
  readonly metrics: readonly MetricColumn[];
  readonly ratio?: RatioSpec;
  /** Rows of the measurement's subjects that belong in this table. */
  includes(target: Target): boolean;
  notes?(ctx: BenchContext): string[];
}
