import { readFileSync } from 'node:fs';
import { isAbsolute, resolve, dirname } from 'node:path';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { ConfigError } from '../errors.js';
import { configSchema, type PolicyConfig, type SluiceConfig, type StatementRuleConfig } from './schema.js';
import { resolveSecret } from './secrets.js';

/** `resources[2].upstream.port` from zod's path array. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out ? `.${String(seg)}` : String(seg);
  }
  return out;
}

function issueMessage(issue: z.core.$ZodIssue): string {
  if (issue.code === 'invalid_type') {
    return `expected ${issue.expected === 'int' ? 'an integer' : articled(issue.expected)}`;
  }
  if (issue.code === 'unrecognized_keys') return `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.join(', ')}`;
  return issue.message;
}

function articled(t: string): string {
  return /^[aeiou]/.test(t) ? `an ${t}` : `a ${t}`;
}

/** Validates a parsed document; throws ConfigError naming every bad key. */
export function validateConfig(raw: unknown): SluiceConfig {
  const forbidden = findForbiddenKey(raw, []);
  if (forbidden) throw new ConfigError([{ path: forbidden, message: 'the key "__proto__" is not allowed' }]);
  const result = configSchema.safeParse(raw ?? {});
  if (result.success) {
    crossCheck(result.data);
    return result.data;
  }
  throw new ConfigError(
    result.error.issues.map((i) => ({ path: formatPath(i.path), message: issueMessage(i) })),
  );
}

/** zod drops `__proto__` keys silently, which could widen a policy; find them before it does. */
function findForbiddenKey(v: unknown, path: PropertyKey[]): string | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  for (const key of Object.keys(v)) {
    const here = [...path, Array.isArray(v) ? Number(key) : key];
    if (key === '__proto__') return formatPath(here);
    const found = findForbiddenKey((v as Record<string, unknown>)[key], here);
    if (found) return found;
  }
  return undefined;
}

/** Rules that span keys and so do not fit the per-key schema. */
function crossCheck(cfg: SluiceConfig): void {
  const issues: { path: string; message: string }[] = [];
  const seen = new Map<string, number>();
  cfg.resources.forEach((r, i) => {
    if (seen.has(r.name)) issues.push({ path: `resources[${i}].name`, message: `duplicate resource name ${r.name} (also resources[${seen.get(r.name)}])` });
    seen.set(r.name, i);
    if (r.upstream.tls.mode !== 'verify-full' && r.upstream.tls.ca) {
      issues.push({ path: `resources[${i}].upstream.tls.ca`, message: 'a CA is only used with mode verify-full' });
    }
  });
  const issuerNames = new Set<string>();
  cfg.identity.issuers.forEach((iss, i) => {
    if (issuerNames.has(iss.name)) issues.push({ path: `identity.issuers[${i}].name`, message: `duplicate issuer name ${iss.name}` });
    issuerNames.add(iss.name);
  });
  cfg.policies.forEach((p, i) => {
    if (p.approval || p.access) {
      issues.push(...approvalPolicyIssues(p, `policies[${i}]`));
    } else if (p.masking) {
      issues.push(...maskingPolicyIssues(p, `policies[${i}]`));
    } else if (p.statements) {
      issues.push(...statementRuleIssues(p, `policies[${i}]`));
    } else {
      if (!p.permissions && !(p.resources && p.grants)) {
        issues.push({ path: `policies[${i}]`, message: 'a policy needs resources and grants, resources and statements, or permissions' });
      }
      if ((p.resources === undefined) !== (p.grants === undefined)) {
        issues.push({ path: `policies[${i}].${p.resources ? 'grants' : 'resources'}`, message: 'resources and grants go together' });
      }
    }
    (p.resources ?? []).forEach((name, j) => {
      if (name !== '*' && !seen.has(name)) {
        issues.push({ path: `policies[${i}].resources[${j}]`, message: `unknown resource ${name}` });
      }
    });
    // Masking more is the safe side, so a masking policy may cover everyone; access policies may not.
    if (Object.keys(p.when).length === 0 && !p.masking) {
      issues.push({ path: `policies[${i}].when`, message: 'name at least one of issuer, subjects, groups, kind, claims' });
    }
  });
  // Only groups carry the issuer's prefix: with several issuers, a subject or claim rule must say whose.
  const issuers = cfg.identity.issuers.length + (cfg.identity.dev_issuer.enabled ? 1 : 0);
  if (issuers > 1) {
    cfg.policies.forEach((p, i) => {
      if ((p.when.subjects || p.when.claims) && !p.when.issuer) {
        issues.push({ path: `policies[${i}].when.issuer`, message: 'with more than one issuer, a policy on subjects or claims must name the issuer they come from' });
      }
    });
  }
  if (!cfg.server.http.tls && !isLoopback(cfg.server.http.listen)) {
    issues.push({ path: 'server.http.tls', message: `the API takes bearer tokens: serve it over TLS (tls: true) or listen on loopback, not ${cfg.server.http.listen}` });
  }
  const listen = cfg.server.postgres.listen;
  if (cfg.server.postgres.allow_plaintext && !isLoopback(listen)) {
    issues.push({ path: 'server.postgres.allow_plaintext', message: `plaintext is only allowed on a loopback listen address, not ${listen}` });
  }
  if (!cfg.server.tls.self_signed && !(cfg.server.tls.cert && cfg.server.tls.key) && !cfg.server.postgres.allow_plaintext) {
    issues.push({ path: 'server.tls', message: 'set cert and key, or self_signed: true (tokens are only accepted inside TLS)' });
  }
  if (issues.length) throw new ConfigError(issues);
}

/**
 * A statement policy says what a session may run, a grant policy who may open
 * one; one policy doing both would leave unclear whether a deny ends the
 * session or the statement. Allow rules only lift the built-in refusals
 * (settings, opaque statements): restricting is what deny rules are for.
 */
function statementRuleIssues(p: PolicyConfig, at: string): { path: string; message: string }[] {
  const issues: { path: string; message: string }[] = [];
  const rule = p.statements as StatementRuleConfig;
  if (p.resources === undefined) issues.push({ path: `${at}.resources`, message: 'statements go with resources' });
  if (p.grants !== undefined) {
    issues.push({ path: `${at}.grants`, message: 'a policy has grants (who may open a session) or statements (what a session may run), not both' });
  }
  if (p.max_session_duration !== undefined) {
    issues.push({ path: `${at}.max_session_duration`, message: 'max_session_duration goes with grants, not statements' });
  }
  if (p.effect === 'allow') {
    for (const key of ['kinds', 'tables', 'functions'] as const) {
      if (rule[key] !== undefined) {
        issues.push({
          path: `${at}.statements.${key}`,
          message: 'an allow rule can only permit settings or opaque statements; restrict kinds, tables and functions with effect: deny',
        });
      }
    }
    if (rule.opaque === false) {
      issues.push({ path: `${at}.statements.opaque`, message: 'an allow rule permits opaque statements with opaque: true; leave the key out otherwise' });
    }
  }
  return issues;
}

/**
 * A masking policy only changes what results show; mixing it with grants,
 * statements or permissions would make one policy both open access and
 * restrict it, and a deny effect has no meaning for masking.
 */
function maskingPolicyIssues(p: PolicyConfig, at: string): { path: string; message: string }[] {
  const issues: { path: string; message: string }[] = [];
  if (p.resources === undefined) issues.push({ path: `${at}.resources`, message: 'masking goes with resources' });
  for (const key of ['grants', 'statements', 'permissions', 'max_session_duration'] as const) {
    if (p[key] !== undefined) issues.push({ path: `${at}.${key}`, message: `a masking policy only masks; put ${key} in a policy of its own` });
  }
  if (p.effect === 'deny') issues.push({ path: `${at}.effect`, message: 'masking has no deny effect; leave effect out' });
  return issues;
}

const ROW_COUNTED_KINDS = new Set(['delete', 'update', 'merge']);

/**
 * An approval or access policy only says what needs a human decision and who
 * decides; it opens nothing by itself, so it carries none of the keys that do,
 * and deny has no meaning for it.
 */
function approvalPolicyIssues(p: PolicyConfig, at: string): { path: string; message: string }[] {
  const issues: { path: string; message: string }[] = [];
  const what = p.approval ? 'approval' : 'access';
  if (p.approval && p.access) issues.push({ path: `${at}.access`, message: 'a policy holds statements (approval) or grants time-boxed access (access), not both' });
  if (p.resources === undefined) issues.push({ path: `${at}.resources`, message: `${what} goes with resources` });
  // An access policy may bound the sessions its grants open; a hold rule opens no session to bound.
  const own = p.access && !p.approval ? (['grants', 'statements', 'permissions', 'masking'] as const) : (['grants', 'statements', 'permissions', 'masking', 'max_session_duration'] as const);
  for (const key of own) {
    if (p[key] !== undefined) issues.push({ path: `${at}.${key}`, message: `an ${what} policy only names what needs a decision; put ${key} in a policy of its own` });
  }
  if (p.effect === 'deny') issues.push({ path: `${at}.effect`, message: `${what} has no deny effect; leave effect out` });
  const rows = p.approval?.rows_over;
  const kinds = p.approval?.statements.kinds;
  if (rows !== undefined && (kinds === undefined || kinds.some((k) => !ROW_COUNTED_KINDS.has(k)))) {
    issues.push({ path: `${at}.approval.statements.kinds`, message: 'rows_over counts rows changed: list only delete, update and merge in kinds' });
  }
  return issues;
}

/** `host:port` or `[v6]:port`, as the listen keys hold them. */
export function parseHostPort(hostPort: string): { host: string; port: number } {
  const i = hostPort.lastIndexOf(':');
  return { host: hostPort.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(hostPort.slice(i + 1)) };
}

export function isLoopback(hostPort: string): boolean {
  const { host } = parseHostPort(hostPort);
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

export interface LoadedConfig {
  readonly config: SluiceConfig;
  readonly file: string;
}

/**
 * Reads and validates sluice.yaml. Relative paths in the file (data_dir,
 * store.path, keys.dir) are resolved against the file's directory, so the
 * same file works from any working directory.
 */
export function loadConfigFile(file: string): LoadedConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError([{ path: '', message: `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}` }]);
  }
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length) {
    throw new ConfigError(doc.errors.map((e) => ({ path: '', message: `YAML: ${e.message}` })));
  }
  const config = validateConfig(doc.toJS());
  const base = dirname(resolve(file));
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(base, p));
  config.store.data_dir = abs(config.store.data_dir);
  if (config.store.path) config.store.path = abs(config.store.path);
  if (config.keys.dir) config.keys.dir = abs(config.keys.dir);
  return { config, file: resolve(file) };
}

/** A resource's credentials with their secrets resolved; held only in memory. */
export interface ResolvedCredential {
  readonly user: string;
  readonly password: string;
}

export function resolveCredentials(cfg: SluiceConfig): Map<string, Map<string, ResolvedCredential>> {
  const out = new Map<string, Map<string, ResolvedCredential>>();
  cfg.resources.forEach((r, i) => {
    const m = new Map<string, ResolvedCredential>();
    for (const [grant, cred] of Object.entries(r.credentials)) {
      if (!cred) continue;
      m.set(grant, { user: cred.user, password: resolveSecret(cred.password, `resources[${i}].credentials.${grant}.password`) });
    }
    out.set(r.name, m);
  });
  return out;
}
