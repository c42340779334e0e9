import { configSchema, type PolicyConfig } from '../../src/config/schema.js';
import type { Principal } from '../../src/identity/principal.js';

export const NOW = 1_900_000_000;
export const IDP = 'https://idp.example.com';
export const CI = 'https://ci.example.com';

/** Policies as the config loader produces them: parsed by the real schema, defaults applied. */
export function policies(...raw: unknown[]): PolicyConfig[] {
  return configSchema.parse({ policies: raw }).policies;
}

export function principal(overrides: Partial<Principal> = {}): Principal {
  return {
    issuer: IDP,
    subject: 'alice',
    kind: 'person',
    groups: [],
    claims: {},
    expiresAt: NOW + 3600,
    ...overrides,
  };
}
