import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { ConfigError } from '../errors.js';

/** --config, else $SLUICE_CONFIG, else ./sluice.yaml, else the quick start's ./sluice-data/sluice.yaml. */
export function findConfigFile(explicit?: string): string {
  if (explicit) return resolve(explicit);
  if (process.env.SLUICE_CONFIG) return resolve(process.env.SLUICE_CONFIG);
  for (const candidate of ['sluice.yaml', 'sluice-data/sluice.yaml']) {
    if (existsSync(candidate)) return resolve(candidate);
  }
  throw new ConfigError([{ path: '', message: 'no configuration file: pass --config <file>, set SLUICE_CONFIG, or run "sluice quickstart"' }]);
}
