import { describe, expect, it } from 'vitest';
import { parseArgs } from '../../bench/args.js';
import { parsePgbenchOutput } from '../../bench/pgbench.js';
import { renderMarkdown, renderText } from '../../bench/render.js';
import { buildTable, cellKey, type BenchReport, type Cell } from '../../bench/report.js';
import { REPO_ROOT, resolveTargetNames } from '../../bench/run.js';
import { scenario1 } from '../../bench/scenarios/select-only.js';
import { benchBaseConfig, settingsDifferingFromDefaults, SLUICE_CONFIGS } from '../../bench/sluice-configs.js';
import { median, spread } from '../../bench/stats.js';
import { unavailableTarget, type Target } from '../../bench/targets.js';

const env = {
  postgresPort: 16432,
  httpPort: 18080,
  dataDir: '/tmp/x',
  upstreamHost: '127.0.0.1',
  upstreamPort: 15432,
  database: 'bench',
  readUser: 'bench_read',
  writeUser: 'bench_write',
  maxSessions: 1200,
};

describe('bench statistics', () => {
  it('takes the median and the half-range spread', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(spread([90, 100, 110])).toBeCloseTo(0.1);
    expect(spread([100])).toBeUndefined();
  });
});

describe('pgbench output', () => {
  it('reads tps, latency and connection time', () => {
    const r = parsePgbenchOutput(
      'number of transactions actually processed: 344\nnumber of failed transactions: 0 (0.000%)\nlatency average = 5.815 ms\naverage connection time = 5.613 ms\ntps = 171.974634 (including reconnection times)\n',
    );
    expect(r).toEqual({ tps: 171.974634, transactions: 344, latencyAvgMs: 5.815, connectionMs: 5.613 });
  });

  it('refuses output with failed transactions or without a tps line', () => {
    expect(() => parsePgbenchOutput('number of transactions actually processed: 3\nnumber of failed transactions: 1 (25%)\nlatency average = 1 ms\ntps = 3\n')).toThrow(/failed transactions/);
    expect(() => parsePgbenchOutput('pgbench: error: connection refused')).toThrow(/unexpected pgbench output/);
  });
});

describe('Sluice bench configurations', () => {
  it('validate against the config schema and list only the settings that differ from the shipped defaults', () => {
    const diffs = settingsDifferingFromDefaults(benchBaseConfig(env));
    const paths = diffs.map((d) => d.path);
    expect(paths).toEqual(
      expect.arrayContaining([
        'server.postgres.allow_plaintext',
        'server.tls.self_signed',
        'identity.dev_issuer.enabled',
        'resources[0].upstream.tls.mode',
        'resources[0].limits.max_sessions',
        'resources[0].limits.max_sessions_per_principal',
      ]),
    );
    expect(paths.some((p) => p.startsWith('policies') || p.includes('credentials') || p.endsWith('upstream.host'))).toBe(false);
    expect(diffs.find((d) => d.path === 'resources[0].limits.max_sessions')).toEqual({ path: 'resources[0].limits.max_sessions', value: 1200, defaultValue: 100 });
  });

  it('name every configuration once and expand "sluice" to all of them', () => {
    const names = SLUICE_CONFIGS.map((c) => c.name);
    expect(new Set(names).size).toBe(names.length);
    expect(resolveTargetNames(['sluice'])).toEqual(names);
    expect(resolveTargetNames(['pgbouncer', 'direct'])).toEqual(['direct', 'pgbouncer']);
    expect(() => resolveTargetNames(['pgpool'])).toThrow(/unknown target pgpool/);
  });
});

describe('command line', () => {
  it('applies the quick preset and explicit overrides', () => {
    const o = parseArgs(['--quick', '--scenarios', '3,1', '--tls', 'off', '--protocol', 'prepared', '--clients', '4'], REPO_ROOT);
    expect(o).toMatchObject({ scenarios: [1, 3], transports: ['plain'], protocols: ['prepared'], clients: 4, reps: 1, quick: true, build: true });
    expect(o.writeFile).toBeUndefined();
    expect(parseArgs(['--write'], REPO_ROOT).writeFile).toBe(`${REPO_ROOT}/docs/BENCHMARKS.md`);
    expect(() => parseArgs(['--scenarios', '8'], REPO_ROOT)).toThrow(/unknown scenario 8/);
  });
});

describe('report tables', () => {
  const target = (name: string, kind: Target['kind']): Target => ({
    name,
    label: name,
    kind,
    sluice: kind === 'sluice' ? SLUICE_CONFIGS.find((c) => c.name === name) : undefined,
    conn: () => {
      throw new Error('not used');
    },
  });

  it('computes Sluice ratios from medians and shows an unavailable target once', () => {
    const opts = parseArgs(['--tls', 'off', '--protocol', 'simple', '--reps', '3'], REPO_ROOT);
    const variants = [{ key: 'plain/simple', labels: { Transport: 'plain', Protocol: 'simple' } }];
    const subjects = [
      target('direct', 'direct'),
      target('pgbouncer', 'pgbouncer'),
      unavailableTarget({ name: 'sluice-none', label: 'none', kind: 'sluice', sluice: SLUICE_CONFIGS[0] }, 'not built'),
      target('sluice-full', 'sluice'),
    ];
    const cells = new Map<string, Cell>([
      [cellKey('select', 'plain/simple', 'direct'), { samples: [{ tps: 200 }, { tps: 210 }, { tps: 190 }], errors: [] }],
      [cellKey('select', 'plain/simple', 'pgbouncer'), { samples: [{ tps: 100 }], errors: [] }],
      [cellKey('select', 'plain/simple', 'sluice-full'), { samples: [{ tps: 50 }, { tps: 40 }], errors: ['boom'] }],
    ]);
    const table = buildTable(scenario1, opts, variants, subjects, cells);
    const full = table.rows.find((r) => r.target.name === 'sluice-full');
    expect(full?.metrics?.tps?.median).toBe(45);
    expect(full?.ratios.direct).toBeCloseTo(45 / 200);
    expect(full?.ratios.pgbouncer).toBeCloseTo(45 / 100);
    expect(full?.status).toBe('1 of 3 runs failed: boom');
    expect(table.rows.filter((r) => r.target.name === 'sluice-none')).toEqual([
      expect.objectContaining({ variant: { Transport: 'all', Protocol: 'all' }, status: 'unavailable: not built' }),
    ]);
    expect(table.ratioBases).toEqual(['direct', 'pgbouncer']);

    const report: BenchReport = {
      command: 'npm run bench',
      startedAt: '2025-01-01T00:00:00.000Z',
      elapsedS: 1,
      machine: { cpus: 2, cpuModel: 'cpu', memoryGiB: 1, os: 'os', kernel: 'k', node: 'v20', postgres: '15', pgbouncer: '1.18' },
      options: opts,
      tables: [table],
      sluiceConfigs: [],
      goals: [],
    };
    expect(renderText(report)).toContain('sluice-none  unavailable: not built');
    expect(renderMarkdown(report)).toMatch(/\| plain \| simple \| sluice-full \| 45 ±11% \|.*\| 0\.23x \| 0\.45x \|/);
  });
});
