import type { Command } from 'commander';
import { loadConfigFile, resolveCredentials } from '../../config/load.js';
import { resolveSecret } from '../../config/secrets.js';
import { findConfigFile } from '../config-file.js';

export function configCommands(program: Command): void {
  const config = program.command('config').description('configuration');
  config
    .command('check')
    .description('validate sluice.yaml and its secret references without starting')
    .option('--config <file>', 'sluice.yaml')
    .action((o: { config?: string }) => {
      const file = findConfigFile(o.config);
      const { config: cfg } = loadConfigFile(file);
      resolveCredentials(cfg);
      const t = cfg.server.tls;
      if (t.cert) resolveSecret(t.cert, 'server.tls.cert');
      if (t.key) resolveSecret(t.key, 'server.tls.key');
      cfg.resources.forEach((r, i) => r.upstream.tls.ca && resolveSecret(r.upstream.tls.ca, `resources[${i}].upstream.tls.ca`));
      if (cfg.keys.signing) resolveSecret(cfg.keys.signing, 'keys.signing');
      cfg.keys.previous.forEach((ref, i) => resolveSecret(ref, `keys.previous[${i}]`));
      process.stdout.write(
        `${file}: valid (${cfg.resources.length} resources, ${cfg.policies.length} policies, ${cfg.identity.issuers.length} issuers${cfg.identity.dev_issuer.enabled ? ' + development issuer' : ''})\n`,
      );
    });
}
