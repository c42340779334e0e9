import { isAbsolute, join } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import type { Transport } from './connection.js';
import { FULL_DEFAULTS, parseScenarios, QUICK_DEFAULTS, type BenchOptions, type Protocol } from './options.js';

const positiveInt = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${name} must be a positive integer`);
  return n;
};

/** How the user started us, for the report: `npm run bench -- …` when npm did. */
function commandLine(args: readonly string[]): string {
  const quoted = args.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
  const viaNpm = process.env.npm_lifecycle_event === 'bench';
  const base = viaNpm ? 'npm run bench' : 'node --import tsx bench/main.ts';
  return quoted ? `${base}${viaNpm ? ' --' : ''} ${quoted}` : base;
}

/** Options from the command line; throws commander's errors (code commander.*) or BenchError. */
export function parseArgs(argv: readonly string[], repoRoot: string): BenchOptions {
  const program = new Command('bench')
    .description('Measure Sluice against PostgreSQL direct and pgbouncer in one interleaved run')
    .option('--scenarios <list>', 'comma-separated scenarios 1-7', '1,2,3,4,5,6,7')
    .option('--targets <list>', 'comma-separated targets: all, direct, pgbouncer, sluice, or a sluice-* configuration', 'all')
    .addOption(new Option('--tls <mode>', 'client-leg transport').choices(['off', 'on', 'both']).default('both'))
    .addOption(new Option('--protocol <mode>', 'pgbench query protocol').choices(['simple', 'prepared', 'both']).default('both'))
    .option('--clients <n>', `pgbench clients (default ${FULL_DEFAULTS.clients})`, positiveInt('clients'))
    .option('--threads <n>', `pgbench threads (default ${FULL_DEFAULTS.threads})`, positiveInt('threads'))
    .option('--duration <s>', `seconds per timed run (default ${FULL_DEFAULTS.durationS}, quick ${QUICK_DEFAULTS.durationS})`, positiveInt('duration'))
    .option('--reps <n>', `repetitions (default ${FULL_DEFAULTS.reps}, quick ${QUICK_DEFAULTS.reps})`, positiveInt('reps'))
    .option('--idle-sessions <n>', `idle sessions for scenario 5 (default ${FULL_DEFAULTS.idleSessions})`, positiveInt('idle-sessions'))
    .option('--bulk-rows <n>', `rows read by scenario 4 (default ${FULL_DEFAULTS.bulkRows})`, positiveInt('bulk-rows'))
    .option('--scale <n>', `pgbench scale (default ${FULL_DEFAULTS.scale})`, positiveInt('scale'))
    .option('--quick', 'about a minute: one repetition of short runs')
    .option('--no-build', 'do not run npm run build before starting Sluice')
    .option('--cpu-prof <dir>', 'profile each Sluice process (node --cpu-prof) into <dir>/<configuration>')
    .option('--write [file]', 'also write the report as Markdown (default docs/BENCHMARKS.md)')
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
  program.parse([...argv], { from: 'user' });
  const o = program.opts<{
    scenarios: string;
    targets: string;
    tls: 'off' | 'on' | 'both';
    protocol: Protocol | 'both';
    clients?: number;
    threads?: number;
    duration?: number;
    reps?: number;
    idleSessions?: number;
    bulkRows?: number;
    scale?: number;
    quick?: boolean;
    build: boolean;
    write?: string | boolean;
    cpuProf?: string;
  }>();
  const d = o.quick ? QUICK_DEFAULTS : FULL_DEFAULTS;
  const transports: Transport[] = o.tls === 'both' ? ['plain', 'tls'] : o.tls === 'on' ? ['tls'] : ['plain'];
  const protocols: Protocol[] = o.protocol === 'both' ? ['simple', 'prepared'] : [o.protocol];
  const abs = (f: string) => (isAbsolute(f) ? f : join(process.cwd(), f));
  const writeFile = o.write === undefined || o.write === false ? undefined : o.write === true ? join(repoRoot, 'docs', 'BENCHMARKS.md') : o.write;
  return {
    scenarios: parseScenarios(o.scenarios),
    targets: o.targets.split(',').map((s) => s.trim()).filter(Boolean),
    transports,
    protocols,
    clients: o.clients ?? d.clients,
    threads: o.threads ?? d.threads,
    durationS: o.duration ?? d.durationS,
    reps: o.reps ?? d.reps,
    idleSessions: o.idleSessions ?? d.idleSessions,
    bulkRows: o.bulkRows ?? d.bulkRows,
    scale: o.scale ?? d.scale,
    build: o.build,
    quick: Boolean(o.quick),
    writeFile: writeFile && abs(writeFile),
    cpuProfDir: o.cpuProf && abs(o.cpuProf),
    command: commandLine(argv),
  };
}
