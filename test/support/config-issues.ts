import { expect } from 'vitest';
import { validateConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';

/** The `path: message` lines validation reports for a raw config; empty when it is valid. */
export function issuesOf(raw: unknown): string[] {
  try {
    validateConfig(raw);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).issues.map((i) => `${i.path}: ${i.message}`);
  }
  return [];
}
