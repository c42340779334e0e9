import { configSchema } from '../src/config/schema.js';
import type { ScenarioId } from './options.js';

/** Where one Sluice instance of the benchmark listens and keeps its data. */
export interface SluiceConfigEnv {
  readonly postgresPort: number;
  readonly httpPort: number;
  readonly dataDir: string;
  readonly upstreamHost: string;
  readonly upstreamPort: number;
  readonly database: string;
  readonly readUser: string;
  readonly writeUser: string;
  /** Sessions the benchmark opens at once (scenario 5), so limits must allow them. */
  readonly maxSessions: number;
}

/** The environment variable Sluice resolves the backend password from. */
export const PASSWORD_ENV = 'BENCH_PG_PASSWORD';

/**
 * One Sluice target: a named sluice.yaml. Later capabilities add entries
 * here (classification, masking, recording) so the cost of each layer gets
 * its own row.
 */
export interface SluiceBenchConfig {
  readonly name: string;
  readonly label: string;
  /** Inspection layers this configuration runs. */
  readonly layers: readonly string[];
  /** Scenarios whose tables carry this configuration's rows. */
  readonly scenarios: readonly ScenarioId[];
  yaml(env: SluiceConfigEnv): Record<string, unknown>;
}

/**
 * What every Sluice target shares: loopback listeners (TLS offered, plaintext
 * allowed so both transports run against the same process), the dev token
 * issuer, one resource and one policy, and limits that admit scenario 5.
 */
export function benchBaseConfig(env: SluiceConfigEnv): Record<string, unknown> {
  return {
    server: {
      postgres: { listen: `127.0.0.1:${env.postgresPort}`, allow_plaintext: true },
      http: { listen: `127.0.0.1:${env.httpPort}` },
      tls: { self_signed: true },
    },
    store: { data_dir: env.dataDir },
    identity: { dev_issuer: { enabled: true } },
    resources: [
      {
        name: 'bench',
        type: 'postgres',
        upstream: { host: env.upstreamHost, port: env.upstreamPort, database: env.database, tls: { mode: 'disable' } },
        credentials: {
          read: { user: env.readUser, password: `\${env:${PASSWORD_ENV}}` },
          write: { user: env.writeUser, password: `\${env:${PASSWORD_ENV}}` },
        },
        limits: { max_sessions: env.maxSessions, max_sessions_per_principal: env.maxSessions },
      },
    ],
    policies: [{ name: 'bench', when: { groups: ['bench'] }, resources: ['bench'], grants: ['read', 'write'] }],
  };
}

export const SLUICE_CONFIGS: readonly SluiceBenchConfig[] = [
  {
    name: 'sluice-none',
    label: 'Sluice, no inspection',
    // Audit of every statement is not switchable yet; until a layer can be
    // turned off this equals sluice-full and the harness reports it as such.
    layers: [],
    scenarios: [1, 2, 3, 4, 5, 6],
    yaml: benchBaseConfig,
  },
  {
    name: 'sluice-full',
    label: 'Sluice, full inspection (shipped defaults)',
    layers: ['audit'],
    scenarios: [1, 2, 3, 4, 5, 6],
    yaml: benchBaseConfig,
  },
  {
    name: 'sluice-masked',
    label: 'Sluice, full inspection and masking of one column',
    layers: ['audit', 'masking'],
    scenarios: [2, 4],
    yaml: (env) => maskedConfig(env, 'redact'),
  },
  {
    name: 'sluice-masked-hash',
    label: 'Sluice, full inspection and masking of one column with the keyed hash',
    layers: ['audit', 'masking'],
    scenarios: [4],
    yaml: (env) => maskedConfig(env, 'hash'),
  },
];

/**
 * Full inspection plus a masking policy for everyone: pgbench -S reads
 * abalance, which is masked (NULL), so every row it gets is rewritten; the
 * bulk table's email column is masked with `strategy`.
 */
function maskedConfig(env: SluiceConfigEnv, strategy: 'redact' | 'hash'): Record<string, unknown> {
  const cfg = benchBaseConfig(env);
  (cfg.policies as Record<string, unknown>[]).push({
    name: 'bench-masking',
    when: {},
    resources: ['bench'],
    masking: {
      columns: [
        { match: ['public.pgbench_accounts.abalance'], strategy: 'null' },
        { match: ['public.bench_bulk.email'], strategy },
      ],
    },
  });
  return cfg;
}

export interface SettingDiff {
  readonly path: string;
  readonly value: unknown;
  /** undefined when the schema has no default (an optional key that was set). */
  readonly defaultValue: unknown;
}

/**
 * Every setting of `yaml` whose effective value differs from what Sluice
 * would use if the key were left out. Resources' names, addresses and
 * credentials and the policies are content, not settings: they stay in the
 * baseline so only tunables show up.
 */
export function settingsDifferingFromDefaults(yaml: Record<string, unknown>): SettingDiff[] {
  const effective = configSchema.parse(yaml);
  const baseline = configSchema.parse(requiredContent(yaml));
  const want = flatten(effective);
  const base = flatten(baseline);
  const out: SettingDiff[] = [];
  for (const [path, value] of want) {
    const def = base.get(path);
    if (JSON.stringify(def) !== JSON.stringify(value)) out.push({ path, value, defaultValue: def });
  }
  return out;
}

function requiredContent(yaml: Record<string, unknown>): Record<string, unknown> {
  const resources = (yaml.resources as Record<string, unknown>[] | undefined) ?? [];
  return {
    resources: resources.map((r) => {
      const up = r.upstream as Record<string, unknown>;
      return { name: r.name, type: r.type, upstream: { host: up.host, database: up.database }, credentials: r.credentials };
    }),
    policies: yaml.policies ?? [],
  };
}

function flatten(value: unknown, prefix = '', out = new Map<string, unknown>()): Map<string, unknown> {
  if (Array.isArray(value) && value.some((v) => typeof v === 'object' && v !== null)) {
    value.forEach((v, i) => flatten(v, `${prefix}[${i}]`, out));
  } else if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) flatten(v, prefix ? `${prefix}.${k}` : k, out);
  } else {
    out.set(prefix, value);
  }
  return out;
}
