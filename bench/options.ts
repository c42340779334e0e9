import type { Transport } from './connection.js';
import { BenchError } from './errors.js';

export const SCENARIO_IDS = [1, 2, 3, 4, 5, 6, 7] as const;
export type ScenarioId = (typeof SCENARIO_IDS)[number];
export type Protocol = 'simple' | 'prepared';

export interface BenchOptions {
  readonly scenarios: readonly ScenarioId[];
  /** Target names (direct, pgbouncer, sluice-…); "sluice" stands for every Sluice configuration. */
  readonly targets: readonly string[];
  readonly transports: readonly Transport[];
  readonly protocols: readonly Protocol[];
  /** pgbench clients for scenarios 1, 2 and the audit fallback; writers for scenario 6. */
  readonly clients: number;
  readonly threads: number;
  /** Seconds per timed measurement (pgbench -T, audit appends). */
  readonly durationS: number;
  readonly reps: number;
  readonly idleSessions: number;
  readonly bulkRows: number;
  readonly scale: number;
  /** Run `npm run build` before starting Sluice (bin/sluice.js runs dist/). */
  readonly build: boolean;
  readonly quick: boolean;
  /** Where `--write` puts the report; undefined: stdout only. */
  readonly writeFile?: string;
  /** Profile each Sluice process with node --cpu-prof into <dir>/<configuration>. */
  readonly cpuProfDir?: string;
  /** The command line as typed, for the report. */
  readonly command: string;
}

export const FULL_DEFAULTS = {
  clients: 8,
  threads: 2,
  durationS: 4,
  reps: 3,
  idleSessions: 1000,
  bulkRows: 1_000_000,
  scale: 10,
} as const;

/**
 * About a minute: one repetition of short runs. Scenario 5 keeps its 1,000
 * sessions: with fewer, the growth per session drowns in the process's own
 * fluctuations.
 */
export const QUICK_DEFAULTS = {
  ...FULL_DEFAULTS,
  durationS: 1,
  reps: 1,
} as const;

export function parseScenarios(text: string): ScenarioId[] {
  const ids = text.split(',').map((s) => Number(s.trim()));
  for (const id of ids) {
    if (!SCENARIO_IDS.includes(id as ScenarioId)) throw new BenchError('bench_bad_option', `unknown scenario ${id}; pick from ${SCENARIO_IDS.join(',')}`);
  }
  return [...new Set(ids as ScenarioId[])].sort();
}
