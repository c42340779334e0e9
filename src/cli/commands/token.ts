import type { Command } from 'commander';
import { loadConfigFile } from '../../config/load.js';
import { parseDuration } from '../../config/duration.js';
import { SluiceError } from '../../errors.js';
import { Keyring } from '../../keys/keyring.js';
import { devIssuerFor } from '../../runtime/build-state.js';
import { findConfigFile } from '../config-file.js';

export function tokenCommand(program: Command): void {
  program
    .command('token')
    .description('mint a token with the development issuer (quick start and local development only)')
    .requiredOption('--subject <name>', 'subject of the token')
    .option('--groups <list>', 'comma-separated groups', '')
    .option('--kind <kind>', 'person or machine', 'person')
    .option('--ttl <duration>', 'lifetime, for example 15m or 1h')
    .option('--config <file>', 'sluice.yaml')
    .action(async (o: { subject: string; groups: string; kind: string; ttl?: string; config?: string }) => {
      const { config } = loadConfigFile(findConfigFile(o.config));
      const keyring = await Keyring.load(config.keys, config.store.data_dir);
      const dev = devIssuerFor(config, keyring);
      if (!dev) throw new SluiceError('dev_issuer_disabled', 'the development issuer is off: set identity.dev_issuer.enabled: true (never in production)');
      if (o.kind !== 'person' && o.kind !== 'machine') throw new SluiceError('token_kind_invalid', '--kind must be person or machine');
      const ttl = o.ttl === undefined ? undefined : parseDuration(o.ttl);
      if (o.ttl !== undefined && ttl === undefined) throw new SluiceError('token_ttl_invalid', '--ttl: expected a duration such as 15m or 1h');
      const token = await dev.mint({ subject: o.subject, groups: o.groups ? o.groups.split(',').filter(Boolean) : [], kind: o.kind, ttlSeconds: ttl });
      process.stdout.write(token + '\n');
    });
}
