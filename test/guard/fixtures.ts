import { configSchema, type GrantName, type PolicyConfig } from '../../src/config/schema.js';
import { judgeStatement, type Verdict } from '../../src/guard/decide.js';
import type { StatementFacts, StatementKind } from '../../src/guard/facts.js';
import type { Principal } from '../../src/identity/principal.js';

export const IDP = 'https://idp.example.com';

/** Statement facts as src/sql reports them; unspecified lists are empty and the statement is not opaque. */
export function facts(kind: StatementKind, text: string, over: Partial<StatementFacts> = {}): StatementFacts {
  return { kind, text, tablesRead: [], tablesWritten: [], columns: [], functions: [], opaque: false, effects: [], ...over };
}

/** Policies as the config loader produces them: parsed by the real schema, defaults applied. */
export function policies(...raw: unknown[]): PolicyConfig[] {
  return configSchema.parse({ policies: raw }).policies;
}

export function principal(overrides: Partial<Principal> = {}): Principal {
  return { issuer: IDP, subject: 'alice', kind: 'person', groups: ['eng'], claims: {}, expiresAt: 2_000_000_000, ...overrides };
}

export function judge(f: StatementFacts, grant: GrantName, pols: readonly PolicyConfig[] = [], who: Principal = principal()): Verdict {
  return judgeStatement({ principal: who, resource: 'orders', grant, facts: f, policies: pols });
}
