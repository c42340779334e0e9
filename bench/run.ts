import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../src/devdb/free-port.js';
import type { Transport } from './connection.js';
import { startBenchDatabase, type BenchDatabase } from './database.js';
import { BenchError } from './errors.js';
import { judgeGoals } from './goals.js';
import { describeMachine } from './machine.js';
import type { BenchOptions } from './options.js';
import { runPgbench } from './pgbench.js';
import { ensurePgbouncer, startPgbouncer, type Pgbouncer } from './pgbouncer.js';
import { buildTable, cellKey, type BenchReport, type Cell, type SluiceConfigReport } from './report.js';
import type { BenchContext, Measurement, TableSpec, Variant } from './scenario.js';
import { scenario6 } from './scenarios/audit-throughput.js';
import { scenario7 } from './scenarios/classification.js';
import { scenario4 } from './scenarios/bulk-read.js';
import { scenario3 } from './scenarios/connect.js';
import { scenario5 } from './scenarios/idle-sessions.js';
import { scenario1, scenario2 } from './scenarios/select-only.js';
import { settingsDifferingFromDefaults, SLUICE_CONFIGS, type SluiceBenchConfig, type SluiceConfigEnv } from './sluice-configs.js';
import { buildSluice, startSluice, type SluiceInstance } from './sluice-process.js';
import { unavailableTarget, type Target } from './targets.js';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

export const TABLES: readonly TableSpec[] = [scenario1, scenario2, scenario3, scenario4, scenario5, scenario6, scenario7];

export type BenchLog = (msg: string) => void;

export interface RunBenchOptions {
  readonly log?: BenchLog;
  /** Checked between measurements; an aborted run still tears everything down. */
  readonly signal?: AbortSignal;
}

const knownTargets = () => ['direct', 'pgbouncer', ...SLUICE_CONFIGS.map((c) => c.name)];

export function resolveTargetNames(names: readonly string[]): string[] {
  const out = new Set<string>();
  for (const n of names) {
    if (n === 'all') knownTargets().forEach((t) => out.add(t));
    else if (n === 'sluice') SLUICE_CONFIGS.forEach((c) => out.add(c.name));
    else if (knownTargets().includes(n)) out.add(n);
    else throw new BenchError('bench_bad_option', `unknown target ${n}; pick from all, sluice, ${knownTargets().join(', ')}`);
  }
  return knownTargets().filter((t) => out.has(t));
}

/** Runs the selected scenarios and returns the report; everything it started is stopped before it returns. */
export async function runBench(opts: BenchOptions, run: RunBenchOptions = {}): Promise<BenchReport> {
  const log = run.log ?? (() => undefined);
  const started = new Date();
  const t0 = performance.now();
  const tables = TABLES.filter((t) => opts.scenarios.includes(t.scenario));
  const names = resolveTargetNames(opts.targets);
  const sluiceConfigs = SLUICE_CONFIGS.filter((c) => names.includes(c.name) && tables.some((t) => c.scenarios.includes(t.scenario)));
  const idle = opts.scenarios.includes(5);
  const workDir = mkdtempSync(join(tmpdir(), 'sluice-bench-'));
  // The cluster and pgbouncer run as the postgres user, which must reach their files.
  chmodSync(workDir, 0o755);
  const stops: (() => Promise<void>)[] = [];
  try {
    const pgbouncerBin = names.includes('pgbouncer') ? await ensurePgbouncer(log) : undefined;
    // pgbouncer keeps its session-mode server connections after clients
    // leave, and each Sluice process may too: room for all of them at once.
    const middles = (pgbouncerBin ? 1 : 0) + sluiceConfigs.length;
    const maxConnections = 100 + opts.clients * 2 + (idle ? opts.idleSessions * Math.max(1, middles) : 0);
    const db = await startBenchDatabase({
      dir: join(workDir, 'db'),
      maxConnections,
      scale: opts.scale,
      bulkRows: opts.scenarios.includes(4) ? opts.bulkRows : 0,
      log,
    });
    stops.push(() => db.cluster.stop());

    const targets: Target[] = [];
    if (names.includes('direct')) {
      targets.push({ name: 'direct', label: 'PostgreSQL, direct', kind: 'direct', conn: (transport) => roleConn(db, db.port, transport) });
    }
    let pgbouncer: Pgbouncer | undefined;
    if (pgbouncerBin) {
      pgbouncer = await startPgbouncer({ bin: pgbouncerBin, dir: join(workDir, 'pgbouncer'), db, maxClients: opts.idleSessions + opts.clients + 100 });
      stops.push(() => (pgbouncer as Pgbouncer).stop());
      const port = pgbouncer.port;
      targets.push({ name: 'pgbouncer', label: 'pgbouncer, session pooling', kind: 'pgbouncer', middle: pgbouncer, conn: (transport) => roleConn(db, port, transport) });
      log(`pgbouncer ${pgbouncer.version} on port ${port}`);
    }
    const configReports: SluiceConfigReport[] = [];
    if (sluiceConfigs.length) {
      const { sluiceTargets, reports } = await startSluiceTargets(opts, db, workDir, sluiceConfigs, log, stops);
      targets.push(...sluiceTargets);
      configReports.push(...reports);
    }

    const ctx: BenchContext = { opts, db, root: REPO_ROOT, workDir, targets, log };
    await warmUp(ctx);
    const measurements = [...new Set(tables.map((t) => t.measurement))];
    const plans: { m: Measurement; variants: Variant[]; subjects: Target[] }[] = [];
    for (const m of measurements) {
      await m.prepare?.(ctx);
      const mine = tables.filter((t) => t.measurement === m);
      const subjects = (await m.subjects(ctx)).filter((s) => mine.some((t) => t.includes(s)));
      plans.push({ m, variants: m.variants(ctx), subjects });
    }
    const cells = new Map<string, Cell>();
    for (let rep = 0; rep < opts.reps; rep++) {
      for (const { m, variants, subjects } of plans) {
        if (rep >= (m.maxReps ?? Infinity)) continue;
        const live = subjects.filter((s) => !s.unavailable);
        for (const v of variants) {
          // Rotating the order keeps any drift of the machine from favouring one target.
          const order = live.map((_, i) => live[(i + rep) % live.length]);
          for (const target of order) {
            if (run.signal?.aborted) throw new BenchError('bench_aborted', 'benchmark interrupted');
            log(`rep ${rep + 1}/${opts.reps} ${m.id} ${v.key} ${target.name}`);
            const key = cellKey(m.id, v.key, target.name);
            const cell = cells.get(key) ?? { samples: [], errors: [] };
            cells.set(key, cell);
            try {
              cell.samples.push(await m.run(ctx, v, target));
            } catch (err) {
              cell.errors.push((err as Error).message.split('\n')[0]);
              log(`  failed: ${(err as Error).message}`);
            }
          }
        }
      }
    }
    const planOf = (m: Measurement) => plans.find((p) => p.m === m);
    const reportTables = tables.map((t) => {
      const p = planOf(t.measurement);
      return buildTable(t, opts, p?.variants ?? [], p?.subjects ?? [], cells);
    });
    return {
      command: opts.command,
      startedAt: started.toISOString(),
      elapsedS: (performance.now() - t0) / 1000,
      machine: describeMachine(db.serverVersion, pgbouncer?.version),
      options: opts,
      tables: reportTables,
      sluiceConfigs: configReports,
      goals: judgeGoals(reportTables),
    };
  } finally {
    for (const stop of stops.reverse()) await stop().catch((err: Error) => log(`cleanup: ${err.message}`));
    rmSync(workDir, { recursive: true, force: true });
  }
}

function roleConn(db: BenchDatabase, port: number, transport: Transport) {
  return { host: db.host, port, user: db.roles.read.user, password: db.roles.read.password, database: db.database, transport };
}

/** Fills PostgreSQL's buffers and the OS cache before the first measured run. */
async function warmUp(ctx: BenchContext): Promise<void> {
  const direct = ctx.targets.find((t) => t.kind === 'direct');
  if (!direct) return;
  ctx.log('warm-up');
  await runPgbench(ctx.db.cluster.binDir, direct.conn('plain'), {
    clients: ctx.opts.clients,
    threads: ctx.opts.threads,
    durationS: 1,
    script: { builtin: 'select-only' },
    protocol: 'simple',
  });
}

async function startSluiceTargets(
  opts: BenchOptions,
  db: BenchDatabase,
  workDir: string,
  configs: readonly SluiceBenchConfig[],
  log: BenchLog,
  stops: (() => Promise<void>)[],
): Promise<{ sluiceTargets: Target[]; reports: SluiceConfigReport[] }> {
  const envFor = async (c: SluiceBenchConfig): Promise<SluiceConfigEnv> => ({
    postgresPort: await freePort(),
    httpPort: await freePort(),
    dataDir: join(workDir, c.name),
    upstreamHost: db.host,
    upstreamPort: db.port,
    database: db.database,
    readUser: db.roles.read.user,
    writeUser: db.roles.write.user,
    maxSessions: opts.idleSessions + opts.clients + 100,
  });
  const placeholders = (env: SluiceConfigEnv) =>
    new Map<string, string>([
      [`127.0.0.1:${env.postgresPort}`, '127.0.0.1:<port>'],
      [`127.0.0.1:${env.httpPort}`, '127.0.0.1:<port>'],
      [String(env.upstreamPort), '<postgres port>'],
      [env.dataDir, '<tmp>/sluice-data'],
    ]);
  const shown = (v: unknown, ph: Map<string, string>) =>
    v === undefined ? undefined : (ph.get(String(v)) ?? (typeof v === 'string' ? v : JSON.stringify(v)));

  let buildError: string | undefined;
  if (opts.build) {
    log('npm run build');
    await buildSluice(REPO_ROOT).catch((err: Error) => (buildError = `npm run build failed: ${err.message}`));
  }
  const targets: Target[] = [];
  const reports: SluiceConfigReport[] = [];
  const seen = new Map<string, string>();
  const envs = await Promise.all(configs.map(envFor));
  // A configuration identical to one measured later is a duplicate, not a
  // different target: report it so instead of measuring noise twice.
  const canonical = configs.map((c) => JSON.stringify(c.yaml({ ...envs[0], dataDir: '<data>' })));
  for (let i = configs.length - 1; i >= 0; i--) {
    if (!seen.has(canonical[i])) seen.set(canonical[i], configs[i].name);
  }
  for (const [i, c] of configs.entries()) {
    const env = envs[i];
    const yaml = c.yaml(env);
    const ph = placeholders(env);
    let unavailable: string | undefined;
    try {
      const settings = settingsDifferingFromDefaults(yaml).map((d) => ({ path: d.path, value: shown(d.value, ph) as string, defaultValue: shown(d.defaultValue, ph) }));
      const twin = seen.get(canonical[i]);
      if (twin !== c.name) unavailable = `same configuration as ${twin} (no inspection layer can be switched off yet), measured there`;
      else if (buildError) unavailable = buildError;
      reports.push({ name: c.name, label: c.label, layers: c.layers, settings, unavailable });
    } catch (err) {
      unavailable = `the bench configuration does not validate: ${(err as Error).message}`;
      reports.push({ name: c.name, label: c.label, layers: c.layers, settings: [], unavailable });
    }
    const base = { name: c.name, label: c.label, kind: 'sluice' as const, sluice: c };
    if (unavailable) {
      targets.push(unavailableTarget(base, unavailable));
      continue;
    }
    let instance: SluiceInstance;
    try {
      log(`starting ${c.name}`);
      instance = await startSluice({
        root: REPO_ROOT,
        dir: env.dataDir,
        config: yaml,
        postgresPort: env.postgresPort,
        httpPort: env.httpPort,
        backendPassword: db.roles.read.password,
        database: db.database,
        cpuProfDir: opts.cpuProfDir ? join(opts.cpuProfDir, c.name) : undefined,
      });
    } catch (err) {
      const reason = (err as Error).message.split('\n')[0];
      log(`${c.name} unavailable: ${reason}`);
      reports[reports.length - 1] = { ...reports[reports.length - 1], unavailable: reason };
      targets.push(unavailableTarget(base, reason));
      continue;
    }
    stops.push(() => instance.stop());
    targets.push({ ...base, middle: instance, conn: (t) => instance.conn(t) });
  }
  return { sluiceTargets: targets, reports };
}
