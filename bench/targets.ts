import type { ConnParams, Transport } from './connection.js';
import type { ScenarioId } from './options.js';
import type { SluiceBenchConfig } from './sluice-configs.js';

export type TargetKind = 'direct' | 'pgbouncer' | 'sluice' | 'store';

/** Something measured: a way to reach PostgreSQL, or (scenario 6) the audit store itself. */
export interface Target {
  readonly name: string;
  readonly label: string;
  readonly kind: TargetKind;
  readonly sluice?: SluiceBenchConfig;
  /** Why this target has no numbers in this run; undefined when it is up. */
  readonly unavailable?: string;
  conn(transport: Transport): ConnParams;
  /** The process whose memory scenario 5 reads (pgbouncer, Sluice). */
  readonly pid?: number;
  heapUsedBytes?(): Promise<number | undefined>;
}

export function unavailableTarget(base: Pick<Target, 'name' | 'label' | 'kind' | 'sluice'>, reason: string): Target {
  return {
    ...base,
    unavailable: reason,
    conn: () => {
      throw new Error(`${base.name} is unavailable`);
    },
  };
}

/** Whether a Sluice target's configuration has rows in this scenario's table. */
export function inScenario(t: Target, scenario: ScenarioId): boolean {
  return t.kind === 'sluice' && (t.sluice?.scenarios.includes(scenario) ?? false);
}
