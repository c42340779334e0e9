export type { StatementFacts, StatementKind } from './facts.js';
export {
  effectiveKinds,
  ruleMatches,
  GRANTS_RULE,
  judgeStatement,
  judgeStatements,
  judgeUnparseable,
  OPAQUE_RULE,
  statementRulesFor,
  UNPARSEABLE_RULE,
  type StatementContext,
  type StatementInput,
  type StatementsInput,
  type Verdict,
} from './decide.js';
export { DEFAULT_DENIED_FUNCTIONS, DEFAULT_DENY_RULE, defaultDenial } from './default-deny.js';
export { grantCovers, requiredGrant, type GrantNeed } from './grants.js';
export { statementLabel } from './describe.js';
export { isRefusedSetting, normalizeSetting, REFUSED_SETTINGS } from './settings.js';
