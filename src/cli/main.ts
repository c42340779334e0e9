import { Command } from 'commander';
import { ConfigError, SluiceError } from '../errors.js';
import { accessCommands } from './commands/access.js';
import { approvalCommands } from './commands/approvals.js';
import { auditCommands } from './commands/audit.js';
import { configCommands } from './commands/config-check.js';
import { loginCommands } from './commands/login.js';
import { policyCommands } from './commands/policy-explain.js';
import { quickstartCommand } from './commands/quickstart.js';
import { sessionCommands } from './commands/sessions.js';
import { startCommand } from './commands/start.js';
import { storeCommands } from './commands/store.js';
import { tokenCommand } from './commands/token.js';

const program = new Command()
  .name('sluice')
  .description('Sluice: identity-aware access gateway (authenticate, authorize, execute, record)')
  .showHelpAfterError();

quickstartCommand(program);
startCommand(program);
configCommands(program);
tokenCommand(program);
loginCommands(program);
auditCommands(program);
sessionCommands(program);
approvalCommands(program);
accessCommands(program);
storeCommands(program);
policyCommands(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof ConfigError) {
    process.stderr.write(`sluice: invalid configuration\n${err.message.split('\n').map((l) => `  ${l}`).join('\n')}\n`);
    process.exit(2);
  }
  if (err instanceof SluiceError) {
    process.stderr.write(`sluice: ${err.message} [${err.code}]\n`);
    process.exit(1);
  }
  throw err;
}
