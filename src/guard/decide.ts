import type { GrantName, PolicyConfig, StatementRuleConfig } from '../config/schema.js';
import type { Principal } from '../identity/principal.js';
import { byCodeUnits, showName } from '../policy/format.js';
import { matchesPrincipal } from '../policy/match.js';
import { DEFAULT_DENY_RULE, defaultDenial } from './default-deny.js';
import { statementLabel } from './describe.js';
import type { StatementFacts, StatementKind } from './facts.js';
import { grantCovers, requiredGrant } from './grants.js';
import { functionMatches, tableMatches } from './patterns.js';
import { isRefusedSetting, normalizeSetting } from './settings.js';

/** Rules the guard names when no configured policy decided. */
export const GRANTS_RULE = 'sluice-grants';
export const OPAQUE_RULE = 'sluice-opaque';
export const UNPARSEABLE_RULE = 'sluice-unparseable';

export type Verdict =
  /** `rule`: the allow policy that lifted a refusal (a setting, an opaque statement), else sluice-grants. */
  | { readonly action: 'allow'; readonly rule: string }
  | { readonly action: 'deny'; readonly rule: string; readonly reason: string; readonly sqlstate: '42501' };

export interface StatementContext {
  readonly principal: Principal;
  /** The resource the session is on. */
  readonly resource: string;
  /** The grant the session was opened with. */
  readonly grant: GrantName;
  readonly policies: readonly PolicyConfig[];
}

export interface StatementInput extends StatementContext {
  readonly facts: StatementFacts;
}

export interface StatementsInput extends StatementContext {
  /** Every statement of one message (a simple Query may hold several). */
  readonly statements: readonly StatementFacts[];
}

const DML: readonly StatementKind[] = ['insert', 'update', 'delete', 'merge'];
/** Kinds that say themselves that they write; tables written by any other kind mean a hidden data change. */
const WRITING_KINDS: readonly StatementKind[] = [...DML, 'copy.in', 'truncate', 'ddl.create', 'ddl.alter', 'ddl.drop'];

/**
 * Judges one statement. Order: a matching deny rule wins over everything;
 * then the built-in deny list (functions, server-side COPY, refused
 * settings); then opaque statements need grant admin or an allow rule with
 * statements.opaque; last, the session's grant must cover what the statement
 * does. Pure: the same input always gives the same verdict.
 */
export function judgeStatement(input: StatementInput): Verdict {
  const own = judgeOne(input);
  const body = input.facts.body;
  if (own.action === 'deny' || body === undefined || body === null) return own;
  const inner = judgeOne({ ...input, facts: body });
  return inner.action === 'deny' ? inner : own;
}

function judgeOne(input: StatementInput): Verdict {
  const { facts, grant } = input;
  const rules = statementRulesFor(input.policies, input.principal, input.resource);

  const denying = rules.filter((p) => p.effect === 'deny' && ruleMatches(p.statements as StatementRuleConfig, facts));
  if (denying.length > 0) {
    const rule = firstByName(denying);
    return deny(rule.name, `${statementLabel(facts)} denied by rule ${showName(rule.name)}${matchDetail(rule.statements as StatementRuleConfig, facts)}`);
  }

  const allowing = rules.filter((p) => p.effect === 'allow');
  const settingRules = new Map<string, string>();
  for (const p of [...allowing].sort((a, b) => byCodeUnits(b.name, a.name))) {
    for (const s of p.statements?.settings ?? []) settingRules.set(normalizeSetting(s), p.name);
  }
  const refused = defaultDenial(facts, new Set(settingRules.keys()));
  if (refused !== undefined) return deny(DEFAULT_DENY_RULE, refused);

  let liftedBy: string | undefined;
  if (facts.setting !== undefined && typeof facts.setting.name === 'string' && isRefusedSetting(facts.setting.name)) {
    liftedBy = settingRules.get(normalizeSetting(facts.setting.name));
  }

  if (isOpaque(facts) && grant !== 'admin') {
    const opaqueRules = allowing.filter((p) => p.statements?.opaque === true);
    if (opaqueRules.length === 0) {
      return deny(
        OPAQUE_RULE,
        `${statementLabel(facts)} denied by rule ${OPAQUE_RULE}: what it does cannot be judged from its text; it needs grant admin, or a policy with effect allow and statements.opaque: true`,
      );
    }
    liftedBy = firstByName(opaqueRules).name;
  }

  const need = requiredGrant(facts);
  if (need.grant === null) return deny(GRANTS_RULE, `${need.what} is not allowed by any grant`);
  if (!grantCovers(grant, need.grant)) {
    return deny(GRANTS_RULE, `${need.what} needs grant ${need.grant}; this session has grant ${showName(grant)}`);
  }
  return { action: 'allow', rule: liftedBy ?? GRANTS_RULE };
}

/**
 * Judges every statement of one message before any of it runs: one denial
 * denies the whole message, and the first denial is the one reported.
 */
export function judgeStatements(input: StatementsInput): Verdict {
  const { statements, ...context } = input;
  let first: Verdict | undefined;
  for (const facts of statements) {
    const v = judgeStatement({ ...context, facts });
    if (v.action === 'deny') return v;
    if (first === undefined || (first.rule === GRANTS_RULE && v.rule !== GRANTS_RULE)) first = v;
  }
  return first ?? { action: 'allow', rule: GRANTS_RULE };
}

/** Text the parser rejects, or that is over a size or nesting limit, is denied: the guard judges only what it can read. */
export function judgeUnparseable(reason: string): Verdict {
  const shown = String(reason).replace(/[^\x20-\x7e]/g, ' ').slice(0, 200).trim() || 'unparseable';
  return deny(UNPARSEABLE_RULE, `statement denied by rule ${UNPARSEABLE_RULE}: ${shown}; Sluice only forwards statements it can parse`);
}

function deny(rule: string, reason: string): Verdict {
  return { action: 'deny', rule, reason: `sluice: ${reason}`, sqlstate: '42501' };
}

/** DO and CALL run code whose text is elsewhere; EXECUTE by name is opaque unless the caller passed the prepared body's facts. */
function isOpaque(facts: StatementFacts): boolean {
  return facts.opaque !== false || facts.kind === 'do' || facts.kind === 'call';
}

/** Statement policies that cover this resource and match the principal. */
export function statementRulesFor(policies: readonly PolicyConfig[], principal: Principal, resource: string): PolicyConfig[] {
  return policies.filter(
    (p) =>
      p.statements !== undefined &&
      p.resources !== undefined &&
      resource !== '*' &&
      (p.resources.includes(resource) || p.resources.includes('*')) &&
      matchesPrincipal(p.when, principal),
  );
}

/** Every given field must match; lists match on any entry. */
export function ruleMatches(rule: StatementRuleConfig, facts: StatementFacts): boolean {
  let constrained = false;
  if (rule.kinds !== undefined) {
    constrained = true;
    const kinds = effectiveKinds(facts);
    if (!rule.kinds.some((k) => kinds.has(k))) return false;
  }
  if (rule.tables !== undefined) {
    constrained = true;
    if (matchedTable(rule.tables, facts) === undefined) return false;
  }
  if (rule.functions !== undefined) {
    constrained = true;
    if (matchedFunction(rule.functions, facts) === undefined) return false;
  }
  if (rule.opaque !== undefined) {
    constrained = true;
    if (isOpaque(facts) !== rule.opaque) return false;
  }
  if (rule.settings !== undefined) {
    constrained = true;
    if (facts.setting === undefined || typeof facts.setting.name !== 'string') return false;
    const name = normalizeSetting(facts.setting.name);
    if (!rule.settings.some((s) => normalizeSetting(s) === name)) return false;
  }
  return constrained;
}

/**
 * The kinds a statement counts as for deny rules. A data-modifying WITH may
 * hold any data change; EXPLAIN ANALYZE runs what it explains; SELECT INTO
 * creates and fills a table. Counting a statement as more kinds than it is
 * only makes a deny rule match more.
 */
export function effectiveKinds(facts: StatementFacts): Set<StatementKind> {
  const kinds = new Set<StatementKind>([facts.kind]);
  const effects = Array.isArray(facts.effects) ? facts.effects : [];
  const hiddenWrite = (facts.tablesWritten?.length ?? 0) > 0 && !WRITING_KINDS.includes(facts.kind);
  if (effects.includes('data_modifying_cte') || hiddenWrite) for (const k of DML) kinds.add(k);
  if (effects.includes('select_into')) {
    kinds.add('ddl.create');
    kinds.add('insert');
  }
  if (effects.includes('create_rule')) kinds.add('ddl.create');
  if (effects.includes('copy_program') || effects.includes('copy_file')) {
    kinds.add('copy.in');
    kinds.add('copy.out');
  }
  return kinds;
}

function matchedTable(patterns: readonly string[], facts: StatementFacts): string | undefined {
  const tables = [...(facts.tablesRead ?? []), ...(facts.tablesWritten ?? [])];
  return tables.find((t) => patterns.some((p) => tableMatches(p, t)));
}

function matchedFunction(patterns: readonly string[], facts: StatementFacts): string | undefined {
  return (facts.functions ?? []).find((f) => patterns.some((p) => functionMatches(p, f)));
}

function matchDetail(rule: StatementRuleConfig, facts: StatementFacts): string {
  const parts: string[] = [];
  const fn = rule.functions ? matchedFunction(rule.functions, facts) : undefined;
  if (fn !== undefined) parts.push(`function ${showName(fn)}`);
  const table = rule.tables ? matchedTable(rule.tables, facts) : undefined;
  if (table !== undefined) parts.push(`table ${showName(table)}`);
  if (rule.settings && facts.setting) parts.push(`setting ${showName(normalizeSetting(facts.setting.name))}`);
  return parts.length ? ` (${parts.join(', ')})` : '';
}

function firstByName(policies: readonly PolicyConfig[]): PolicyConfig {
  return policies.reduce((a, b) => (byCodeUnits(b.name, a.name) < 0 ? b : a));
}
