import { z } from 'zod';
import { parseDuration } from './duration.js';

/**
 * The shape of sluice.yaml. Keys are snake_case; the top-level sections are
 * fixed (server, store, keys, identity, resources, policies) and later
 * capabilities extend them rather than adding new roots.
 * docs/sluice.schema.json is generated from this file (npm run schema).
 */

const duration = z
  .union([z.number(), z.string()])
  .refine((v) => parseDuration(v) !== undefined, {
    message: 'expected a duration such as 30, "30s", "15m", "8h" or "1d"',
  })
  .transform((v) => parseDuration(v) as number);

/** A duration key: seconds, or a string with a unit (ms, s, m, h, d). The default shows in the JSON Schema too. */
function durationKey(def: number | string, description: string) {
  return duration.default(def as never).meta({ description: `${description} Duration: seconds, or "500ms", "30s", "15m", "8h", "1d".`, durationDefault: def });
}

/** `${env:NAME}` or `${file:/path}`: secrets are references, never inline values. */
export const SECRET_REF = /^\$\{(env|file):([^}]+)\}$/;
const secretRef = z
  .string()
  .regex(SECRET_REF, { message: 'expected a secret reference: ${env:NAME} or ${file:/path}, never an inline value' })
  .meta({ description: 'Secret reference: ${env:NAME} or ${file:/path}.' });

const hostPort = z
  .string()
  .regex(/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.\-]+):\d{1,5}$/, { message: 'expected host:port, for example 0.0.0.0:6432' });

const grantName = z.enum(['read', 'write', 'ddl', 'admin']);
export type GrantName = z.infer<typeof grantName>;
export const GRANTS: readonly GrantName[] = grantName.options;

const tlsFiles = z.strictObject({
  cert: secretRef.optional().meta({ description: 'PEM certificate chain (reference).' }),
  key: secretRef.optional().meta({ description: 'PEM private key (reference).' }),
  self_signed: z
    .boolean()
    .default(false)
    .meta({ description: 'Generate and keep a self-signed certificate in the data directory (development).' }),
});

const postgresListener = z.strictObject({
  listen: hostPort.default('127.0.0.1:6432').meta({ description: 'host:port of the PostgreSQL listener.' }),
  allow_plaintext: z
    .boolean()
    .default(false)
    .meta({
      description:
        'Accept connections without TLS. Only allowed on a loopback listen address, for development; Sluice logs a warning.',
    }),
  max_startup_bytes: z.number().int().min(64).max(1_048_576).default(10_000).meta({ description: 'Largest startup packet accepted before authentication.' }),
  max_message_bytes: z
    .number()
    .int()
    .min(1024)
    .max(1_073_741_824)
    .default(64 * 1024 * 1024)
    .meta({ description: 'Largest client message (a query, a Bind, a CopyData frame); larger ones end the session with SQLSTATE 54000.' }),
  auth_timeout: durationKey(10, 'Time from connecting to the session being open: TLS, token, policy, the backend connection and the session.opened record.'),
  max_unauthenticated: z.number().int().min(1).default(256).meta({ description: 'Connections allowed to be authenticating at once; more are refused with SQLSTATE 53300.' }),
});

const httpListener = z.strictObject({
  listen: hostPort.default('127.0.0.1:8080').meta({ description: 'host:port of the HTTP listener (API, health, metrics, JWKS).' }),
  tls: z.boolean().default(false).meta({ description: 'Serve the HTTP API over the server TLS certificate.' }),
});

const webhookTarget = z.strictObject({
  name: z.string().regex(/^[a-z0-9][a-z0-9_-]*$/, { message: 'expected a lowercase name: letters, digits, - and _' }).meta({ description: 'Named in logs and metrics.' }),
  url: z.url().meta({ description: 'Where the JSON payload is POSTed.' }),
  secret: secretRef.meta({ description: 'HMAC-SHA256 key of the X-Sluice-Signature header (reference).' }),
});

const slackTarget = z.strictObject({
  name: z.string().regex(/^[a-z0-9][a-z0-9_-]*$/, { message: 'expected a lowercase name: letters, digits, - and _' }).meta({ description: 'Named in logs and metrics.' }),
  url: secretRef.meta({ description: 'Slack incoming-webhook URL (reference: the URL itself is the credential).' }),
});

const notifications = z.strictObject({
  webhooks: z.array(webhookTarget).default([]).meta({ description: 'Signed JSON webhooks told of every approval request and decision.' }),
  slack: z.array(slackTarget).default([]).meta({ description: 'Slack-compatible incoming webhooks told of every approval request and decision.' }),
  max_attempts: z.number().int().min(1).max(20).default(6).meta({ description: 'Deliveries per notification before it is given up (logged and counted).' }),
  timeout: durationKey(5, 'Timeout of one delivery attempt.'),
});

const server = z.strictObject({
  public_url: z.url().optional().meta({ description: 'Base URL people and tools use to reach Sluice; approval links are built from it.' }),
  notifications: notifications.prefault({}),
  postgres: postgresListener.prefault({}),
  http: httpListener.prefault({}),
  tls: tlsFiles.prefault({}),
  shutdown_grace: durationKey(30, 'On SIGTERM/SIGINT, how long open sessions may run before they are ended.'),
  log_level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info').meta({ description: 'Structured JSON log level.' }),
  watch_config: z.boolean().default(true).meta({ description: 'Reload when the config file changes (SIGHUP always reloads).' }),
});

const checkpoints = z.strictObject({
  interval: durationKey(60, 'How often a signed checkpoint of the audit chain head is written, when the head moved since the last one.').refine((s) => s >= 1, {
    message: 'at least 1 second',
  }),
  export: z
    .strictObject({
      file: z
        .string()
        .min(1)
        .optional()
        .meta({ description: 'File each checkpoint is also appended to as a JSON line. Keep it outside the store (ideally shipped off the host): a rewrite of the store cannot rewrite it, so `sluice audit verify --checkpoints` catches a rewritten log.' }),
    })
    .prefault({}),
});

const store = z.strictObject({
  type: z.literal('sqlite').default('sqlite').meta({ description: 'Store implementation; sqlite is the embedded default.' }),
  data_dir: z.string().default('./sluice-data').meta({ description: 'Directory for the store, keys and recordings.' }),
  path: z.string().optional().meta({ description: 'SQLite file; default <data_dir>/sluice.db.' }),
  synchronous: z
    .enum(['normal', 'full'])
    .default('normal')
    .meta({ description: 'normal: survives a crash of Sluice (WAL). full: also survives power loss, at a measured cost.' }),
  busy_timeout: durationKey(
    1,
    'How long a write waits for a lock held by another process before the statement it records is refused. The wait blocks the gateway, so keep it short.',
  ),
  checkpoints: checkpoints.prefault({}),
});

const keys = z.strictObject({
  dir: z.string().optional().meta({ description: 'Where generated keys live; default <data_dir>/keys.' }),
  signing: secretRef.optional().meta({ description: 'PEM private signing key (Ed25519 or P-256) instead of a generated one.' }),
  previous: z.array(secretRef).default([]).meta({ description: 'Old signing keys still published in the JWKS during rotation.' }),
});

const issuer = z.strictObject({
  name: z
    .string()
    .regex(/^[a-z0-9][a-z0-9_-]*$/, { message: 'expected a lowercase name: letters, digits, - and _' })
    .meta({ description: 'Short name; also the default group prefix ("corp:") when several issuers are configured.' }),
  issuer: z.url().meta({ description: 'Exact issuer URL; compared byte for byte with the token iss.' }),
  audience: z.string().min(1).meta({ description: 'Required aud value.' }),
  jwks_uri: z.url().optional().meta({ description: 'Explicit JWKS URL; default: from OpenID discovery.' }),
  algorithms: z
    .array(z.enum(['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA']))
    .min(1)
    .default(['RS256'])
    .meta({ description: 'Allowed signature algorithms; never taken from the token. none and HS* are not accepted.' }),
  groups_claim: z.string().default('groups').meta({ description: 'Claim holding the groups (list, or space/comma separated string); a dotted path reaches nested claims.' }),
  group_prefix: z.string().optional().meta({ description: 'Prefix for groups; default "<name>:" when more than one issuer is configured.' }),
  kind: z.enum(['person', 'machine']).default('person').meta({ description: 'Kind of the principals this issuer vouches for.' }),
  jwks_cache: durationKey(600, 'How long fetched keys are trusted before they are fetched again.'),
  jwks_cooldown: durationKey(30, 'Least time between JWKS refetches on an unknown kid.'),
  http_timeout: durationKey(5, 'Timeout for discovery and JWKS requests.'),
  login: z
    .strictObject({
      client_id: z.string().min(1).meta({ description: 'OAuth client id of the sluice CLI at this issuer: a public client (no secret) allowed the authorization code flow with PKCE and a loopback redirect, and the device flow.' }),
      scopes: z.array(z.string().min(1)).min(1).default(['openid']).meta({ description: 'Scopes `sluice login` asks for.' }),
    })
    .optional()
    .meta({ description: 'Lets people get a token for this issuer with `sluice login`; published unauthenticated at /api/v1/login.' }),
});

const devIssuer = z.strictObject({
  enabled: z.boolean().default(false).meta({ description: 'Built-in development token issuer (quick start only).' }),
  audience: z.string().default('sluice').meta({ description: 'aud of minted tokens.' }),
  token_ttl: durationKey(3600, 'Lifetime of minted tokens.'),
});

const identity = z.strictObject({
  issuers: z.array(issuer).default([]).meta({ description: 'Trusted token issuers (company IdP, CI platforms).' }),
  dev_issuer: devIssuer.prefault({}),
  clock_skew: durationKey(60, 'Tolerance for exp and nbf; at most 60 s.').refine((s) => s <= 60, { message: 'at most 60 seconds' }),
});

const credential = z.strictObject({
  user: z.string().min(1).meta({ description: 'Backend role name.' }),
  password: secretRef,
});

const upstream = z.strictObject({
  host: z.string().min(1).meta({ description: 'Backend host name or address.' }),
  port: z.number().int().min(1).max(65535).default(5432).meta({ description: 'Backend port.' }),
  database: z.string().min(1).meta({ description: 'Database on the backend.' }),
  tls: z
    .strictObject({
      mode: z.enum(['disable', 'require', 'verify-full']).default('require').meta({ description: 'TLS to the backend: require encrypts without verifying; verify-full checks CA and host name.' }),
      ca: secretRef.optional().meta({ description: 'PEM CA bundle for verify-full.' }),
      server_name: z.string().optional().meta({ description: 'Host name to verify, when it differs from host.' }),
    })
    .prefault({}),
  connect_timeout: durationKey(10, 'Timeout to connect and authenticate to the backend.'),
});

const resource = z.strictObject({
  name: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, { message: 'expected letters, digits, ., - and _' })
    .meta({ description: 'What clients put as the database name.' }),
  type: z.literal('postgres').meta({ description: 'Protocol of the resource.' }),
  upstream,
  credentials: z
    .partialRecord(grantName, credential)
    .refine((c) => Object.keys(c).length > 0, { message: 'at least one grant needs a credential' })
    .meta({ description: 'Backend credential per grant (read, write, ddl, admin).' }),
  limits: z
    .strictObject({
      max_sessions: z.number().int().min(1).default(100).meta({ description: 'Live sessions on this resource, all principals together.' }),
      max_sessions_per_principal: z.number().int().min(1).default(10).meta({ description: 'Live sessions on this resource per principal (a CI fan-out cannot exhaust max_connections).' }),
    })
    .prefault({}),
  redact_parameters: z
    .array(z.enum(['bool', 'bytea', 'char', 'name', 'int8', 'int2', 'int4', 'text', 'oid', 'json', 'xml', 'float4', 'float8', 'money', 'bpchar', 'varchar', 'date', 'time', 'timestamp', 'timestamptz', 'interval', 'numeric', 'uuid', 'jsonb']))
    .default([])
    .meta({ description: 'Bind parameter type names (for example bytea) whose values are recorded as [redacted].' }),
});

const principalMatch = z
  .strictObject({
    issuer: z.string().optional().meta({ description: 'Exact issuer URL.' }),
    subjects: z.array(z.string()).min(1).optional().meta({ description: 'Any of these subjects (exact).' }),
    groups: z.array(z.string()).min(1).optional().meta({ description: 'Any of these groups (exact, with the issuer prefix if any).' }),
    kind: z.enum(['person', 'machine']).optional().meta({ description: 'Only people or only machines.' }),
    claims: z
      .record(z.string(), z.union([z.string(), z.number(), z.boolean()]))
      .refine((c) => Object.keys(c).length > 0, { message: 'name at least one claim, or leave claims out' })
      .optional()
      .meta({ description: 'Every listed claim must equal the value (an array claim must contain it).' }),
  })
  .meta({ description: 'All given fields must match; subjects and groups match any of their entries.' });

/** Statement kinds as src/sql classifies them (StatementFacts.kind); src/guard/facts.ts holds the same list. */
export const STATEMENT_KINDS = [
  'select', 'insert', 'update', 'delete', 'merge', 'ddl.create', 'ddl.alter', 'ddl.drop', 'truncate', 'copy.in', 'copy.out',
  'grant', 'revoke', 'role', 'set', 'reset', 'show', 'transaction', 'explain', 'utility', 'prepare', 'execute', 'deallocate',
  'call', 'do', 'other',
] as const;
const statementKind = z.enum(STATEMENT_KINDS);

const tablePattern = z
  .string()
  .regex(/^[^.\s]+\.[^.\s]+$/, { message: 'expected schema.table, where * matches one name: public.users, public.*, *.users' })
  .meta({ description: 'schema.table; * matches within one name.' });
const functionPattern = z
  .string()
  .regex(/^(?:[A-Za-z_][A-Za-z0-9_$]*\.)?(?:[A-Za-z_][A-Za-z0-9_$]*\*?|\*)$/, {
    message: 'expected a function name, optionally schema-qualified, with an optional trailing * (pg_read_file, dblink*)',
  });
const settingName = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_.]*$/, { message: 'expected a setting name such as role, session_authorization or search_path' });

const statementRule = z
  .strictObject({
    kinds: z.array(statementKind).min(1).optional().meta({ description: 'Statement kinds (select, insert, ddl.drop, ...); effects count, so a data-modifying WITH is also insert/update/delete/merge.' }),
    tables: z.array(tablePattern).min(1).optional().meta({ description: 'Tables read or written, as schema.table patterns (public.*, *.users); case-insensitive.' }),
    functions: z.array(functionPattern).min(1).optional().meta({ description: 'Functions called anywhere in the statement: exact names or prefix globs (dblink*); case-insensitive.' }),
    opaque: z.boolean().optional().meta({ description: 'Statements whose effect cannot be judged from the text (DO, CALL, EXECUTE by name).' }),
    settings: z.array(settingName).min(1).optional().meta({ description: 'Settings changed by SET, RESET or set_config (role, session_authorization, search_path, ...).' }),
  })
  .refine((r) => Object.keys(r).length > 0, { message: 'name at least one of kinds, tables, functions, opaque, settings' })
  .meta({
    description:
      'Statement rule. With effect deny: denies statements that match every given field. With effect allow: permits the listed settings, or opaque statements (opaque: true).',
  });

const columnPattern = z
  .string()
  .regex(/^[^.\s]+\.[^.\s]+\.[^.\s]+$/, { message: 'expected schema.table.column, where * matches within one name: public.users.password, *.*.api_key' })
  .meta({ description: 'schema.table.column; * matches within one name; case-insensitive.' });

/** The same lists as src/masking (strategies.ts, detectors.ts); test/config/masking-config.test.ts keeps them equal. */
export const MASK_STRATEGY_NAMES = ['redact', 'partial', 'hash', 'null'] as const;
const maskStrategy = z.enum(MASK_STRATEGY_NAMES);
const keepLast = z.number().int().min(1).max(64).default(4).meta({ description: 'partial: characters kept at the end.' });

export const DETECTOR_NAME_LIST = ['email', 'payment_card', 'iban', 'us_ssn', 'phone', 'jwt', 'aws_access_key', 'private_key', 'api_key'] as const;

const maskColumns = z.strictObject({
  match: z.array(columnPattern).min(1).meta({ description: 'Columns, by origin: a column selected under any alias, or through a view, is still the column.' }),
  strategy: maskStrategy.default('redact').meta({ description: 'redact ([masked]), partial (**** and the last keep_last characters), hash (keyed HMAC: equal values give equal hashes, so tools can still join and group the results), null.' }),
  keep_last: keepLast,
});

const maskDetectors = z.strictObject({
  names: z.array(z.enum(DETECTOR_NAME_LIST)).min(1).meta({ description: 'Value detectors applied to text values in results, whatever their column.' }),
  columns: z.array(columnPattern).min(1).optional().meta({ description: 'Only values whose origin is one of these columns; default every text value, expressions included.' }),
  strategy: maskStrategy.default('redact').meta({ description: 'How a detected value is replaced: redact ([masked:<detector>]), partial, hash; null makes the whole value NULL.' }),
  keep_last: keepLast,
});

const masking = z
  .strictObject({
    columns: z.array(maskColumns).default([]).meta({ description: 'Masked columns and their strategy.' }),
    detectors: maskDetectors.optional(),
    exempt: z.array(principalMatch).default([]).meta({ description: 'Principals who see raw values (any entry matches), for example the dba group.' }),
    functions: z
      .array(functionPattern)
      .min(1)
      .optional()
      .meta({ description: 'User-defined and extension functions trusted not to reveal masked columns; a statement calling any other function outside pg_catalog is denied.' }),
    indirect: z
      .enum(['deny', 'mask'])
      .default('deny')
      .meta({
        description:
          'A statement that reads a masked column other than by selecting it (in a function, cast, aggregate, whole-row reference, subquery, CTE): deny it, or mask every column of its result. Masked columns in WHERE, JOIN, ORDER BY, GROUP BY, HAVING, DISTINCT, windows and set operations are always denied.',
      }),
    notifications: z
      .enum(['redact', 'detect'])
      .default('redact')
      .meta({ description: 'NOTIFY payloads: redact them whole, or apply the detectors only (without detectors, payloads are redacted).' }),
    max_value_bytes: z
      .number()
      .int()
      .min(64)
      .max(64 * 1024 * 1024)
      .default(1024 * 1024)
      .meta({ description: 'Values larger than this are masked whole when a detector or masked column applies; they are never scanned or passed through.' }),
  })
  .refine((m) => m.columns.length > 0 || m.detectors !== undefined, { message: 'name columns, detectors, or both' })
  .meta({ description: 'Data masking for principals this policy matches (when may be {} for everyone), except the exempt.' });

const approverFields = {
  approvers: z
    .array(principalMatch)
    .min(1)
    .meta({ description: 'Who may decide (any entry matches). The requester never may, even when listed.' }),
  required: z.number().int().min(1).max(10).default(1).meta({ description: 'Distinct approvers needed; one denial denies.' }),
  request_ttl: durationKey(900, 'How long a request stays open for a decision.'),
};

const approval = z
  .strictObject({
    statements: statementRule.meta({ description: 'Which statements are held: every given field must match (kinds, tables, functions, opaque).' }),
    rows_over: z
      .number()
      .int()
      .min(0)
      .optional()
      .meta({ description: 'DELETE, UPDATE and MERGE only: hold only when the statement would change more rows than this. Sluice measures inside a savepoint.' }),
    mode: z
      .enum(['wait', 'fail_fast'])
      .default('wait')
      .meta({ description: 'wait: the session waits for the decision (psql). fail_fast: the statement fails naming the request; re-running it after approval runs it once (pipelines).' }),
    approval_ttl: durationKey(3600, 'fail_fast: how long an approval may be used by a re-run.'),
    ...approverFields,
  })
  .meta({ description: 'Hold matching statements for a human decision. An approval only releases a statement the session grant allows.' });

const access = z
  .strictObject({
    grants: z.array(grantName).min(1).meta({ description: 'Grants that may be requested on the resources.' }),
    max_duration: duration
      .refine((s) => s > 0, { message: 'expected a duration above zero' })
      .default(8 * 3600)
      .meta({ description: 'Longest time a request may ask for. Duration: seconds, or "30m", "2h", "1d".', durationDefault: '8h' }),
    ...approverFields,
  })
  .meta({ description: 'Time-boxed access: principals this policy matches may request these grants for a while; once approved, their sessions may use them until the time is up.' });

const permission = z.enum(['audit:read', 'sessions:read', 'sessions:terminate', 'approvals:read']);
export type Permission = z.infer<typeof permission>;

const policy = z.strictObject({
  name: z.string().min(1).meta({ description: 'Named in decisions, refusals and audit events.' }),
  effect: z.enum(['allow', 'deny']).default('allow').meta({ description: 'A matching deny wins over every allow.' }),
  when: principalMatch,
  resources: z.array(z.string().min(1)).min(1).optional().meta({ description: 'Resource names, or "*". Goes with grants or statements.' }),
  grants: z.array(grantName).min(1).optional().meta({ description: 'Session grants on the resources.' }),
  statements: statementRule.optional(),
  permissions: z
    .array(permission)
    .min(1)
    .optional()
    .meta({ description: 'Sluice API permissions: audit:read, sessions:read, sessions:terminate, approvals:read (see every approval request).' }),
  masking: masking.optional(),
  approval: approval.optional(),
  access: access.optional(),
  max_session_duration: duration
    .refine((s) => s > 0, { message: 'expected a duration above zero' })
    .optional()
    .meta({ description: 'Sessions allowed by this policy end after this long, even when they outlive the token.' }),
});

export const configSchema = z.strictObject({
  server: server.prefault({}),
  store: store.prefault({}),
  keys: keys.prefault({}),
  identity: identity.prefault({}),
  resources: z.array(resource).default([]).meta({ description: 'Backends Sluice fronts.' }),
  policies: z.array(policy).default([]).meta({ description: 'Who may do what; deny wins.' }),
});

export type SluiceConfig = z.infer<typeof configSchema>;
export type ResourceConfig = SluiceConfig['resources'][number];
export type PolicyConfig = SluiceConfig['policies'][number];
export type IssuerConfig = SluiceConfig['identity']['issuers'][number];
export type PrincipalMatch = PolicyConfig['when'];
export type StatementRuleConfig = NonNullable<PolicyConfig['statements']>;
export type MaskingConfig = NonNullable<PolicyConfig['masking']>;
export type ApprovalRuleConfig = NonNullable<PolicyConfig['approval']>;
export type AccessRuleConfig = NonNullable<PolicyConfig['access']>;
export type NotificationsConfig = SluiceConfig['server']['notifications'];
