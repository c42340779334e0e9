import type { GoalStatus, RatioBase, ReportRow, ReportTable } from './report.js';

/** The issue's targets for Sluice, judged on the medians of this run. */
export function judgeGoals(tables: readonly ReportTable[]): GoalStatus[] {
  const table = (n: number) => tables.find((t) => t.scenario === n);
  const goals: GoalStatus[] = [];
  const s1 = table(1);
  if (s1) {
    goals.push(ratioGoal('pgbench -S with full inspection: at least 1.0x pgbouncer TPS, simple and prepared', s1, 'sluice-full', 'pgbouncer', (r) => r >= 1.0));
    goals.push(ratioGoal('pgbench -S: full inspection at least 0.9x Sluice without inspection', s1, 'sluice-full', 'sluice-none', (r) => r >= 0.9));
  }
  const s3 = table(3);
  if (s3) goals.push(ratioGoal('Connection setup with full inspection: no slower than direct (time ratio at most 1.0x)', s3, 'sluice-full', 'direct', (r) => r <= 1.0));
  const s4 = table(4);
  if (s4) goals.push(maskingGoal(s4));
  const s5 = table(5);
  if (s5) goals.push(valueGoal('Idle sessions: under 64 KiB of Sluice memory (RSS) per session', s5, 'sluice-full', 'rssPerSessionKiB', 'KiB', (v) => v < 64));
  return goals;
}

const variantName = (r: ReportRow) => Object.values(r.variant).join('/');

function rowsOf(table: ReportTable, target: string): readonly ReportRow[] {
  return table.rows.filter((r) => r.target.name === target);
}

function notMeasured(goal: string, rows: readonly ReportRow[], what: string): GoalStatus {
  const why = rows.find((r) => r.status && !r.metrics)?.status ?? `${what} has no rows in this run`;
  return { goal, verdict: 'not measured', detail: why };
}

function ratioGoal(goal: string, table: ReportTable, target: string, base: RatioBase, ok: (r: number) => boolean): GoalStatus {
  const rows = rowsOf(table, target);
  const measured = rows.filter((r) => r.ratios[base] !== undefined);
  if (measured.length === 0) {
    const baseRows = rowsOf(table, base);
    return notMeasured(goal, rows.some((r) => r.metrics) ? baseRows : rows, rows.some((r) => r.metrics) ? base : target);
  }
  const parts = measured.map((r) => `${variantName(r)} ${(r.ratios[base] as number).toFixed(2)}x`);
  return { goal, verdict: measured.every((r) => ok(r.ratios[base] as number)) ? 'met' : 'not met', detail: parts.join(', ') };
}

function valueGoal(goal: string, table: ReportTable, target: string, metric: string, unit: string, ok: (v: number) => boolean): GoalStatus {
  const rows = rowsOf(table, target);
  const measured = rows.filter((r) => r.metrics?.[metric] !== undefined);
  if (measured.length === 0) return notMeasured(goal, rows, target);
  const values = measured.map((r) => [variantName(r), r.metrics?.[metric]?.median as number] as const);
  return {
    goal,
    verdict: values.every(([, v]) => ok(v)) ? 'met' : 'not met',
    detail: values.map(([n, v]) => `${n} ${v.toFixed(1)} ${unit}`).join(', '),
  };
}

function maskingGoal(table: ReportTable): GoalStatus {
  const goal = 'Bulk read with masking: at least 500,000 rows/s and within 1.25x of the same read without masking';
  const masked = table.rows.filter((r) => r.target.layers?.includes('masking'));
  if (masked.length === 0) {
    const full = rowsOf(table, 'sluice-full').filter((r) => r.metrics?.rowsPerS);
    const ref = full.map((r) => `${variantName(r)} ${Math.round(r.metrics?.rowsPerS?.median as number).toLocaleString('en-US')} rows/s`).join(', ');
    return { goal, verdict: 'not measured', detail: `no masking configuration exists yet${ref ? `; Sluice without masking: ${ref}` : ''}` };
  }
  // "Without masking" is the same Sluice configuration minus the masking policy: sluice-full, same variant.
  const full = rowsOf(table, 'sluice-full');
  const rate = (r: ReportRow | undefined) => r?.metrics?.rowsPerS?.median as number | undefined;
  const measured = masked.flatMap((r) => {
    const ref = full.find((f) => variantName(f) === variantName(r));
    const m = rate(r);
    const u = rate(ref);
    return m !== undefined && u !== undefined ? [{ r, m, slower: u / m }] : [];
  });
  if (measured.length === 0) return notMeasured(goal, masked, 'the masking configuration');
  const ok = measured.every((x) => x.m >= 500_000 && x.slower <= 1.25);
  return {
    goal,
    verdict: ok ? 'met' : 'not met',
    detail: measured
      .map((x) => `${variantName(x.r)} ${x.r.target.name} ${Math.round(x.m).toLocaleString('en-US')} rows/s, ${x.slower.toFixed(2)}x slower than unmasked`)
      .join(', '),
  };
}
