import type { ConnParams, Transport } from './connection.js';
import { BenchError } from './errors.js';
import type { ScenarioId } from './options.js';
import type { SluiceBenchConfig } from './sluice-configs.js';

export type TargetKind = 'direct' | 'pgbouncer' | 'sluice' | 'store' | 'classifier';

/** Something measured: a way to reach PostgreSQL, or (scenario 6) the audit store itself. */
export interface Target {
  readonly name: string;
  readonly label: string;
  readonly kind: TargetKind;
  readonly sluice?: SluiceBenchConfig;
  /** Why this target has no numbers in this run; undefined when it is up. */
  readonly unavailable?: string;
  conn(transport: Transport): ConnParams;
  /** The process in the middle (pgbouncer, Sluice), whose memory scenario 5 reads. */
  readonly middle?: MiddleProcess;
}

export interface MiddleProcess {
  pid(): number;
  /** Replaces the process with a fresh one on the same port; `inspect` lets heapUsedBytes collect garbage first. */
  restart(opts?: { inspect?: boolean }): Promise<void>;
  /** Live V8 heap after a full collection; undefined for a process without one (pgbouncer) or when it cannot say. */
  heapUsedBytes?(): Promise<number | undefined>;
}

export function unavailableTarget(base: Pick<Target, 'name' | 'label' | 'kind' | 'sluice'>, reason: string): Target {
  return {
    ...base,
    unavailable: reason,
    conn: () => {
      throw new BenchError('bench_target_unavailable', `${base.name} is unavailable: ${reason}`);
    },
  };
}

/** Whether a Sluice target's configuration has rows in this scenario's table. */
export function inScenario(t: Target, scenario: ScenarioId): boolean {
  return t.kind === 'sluice' && (t.sluice?.scenarios.includes(scenario) ?? false);
}
