import type { Command } from 'commander';
import { loadConfigFile } from '../../config/load.js';
import { Gateway } from '../../runtime/gateway.js';
import { findConfigFile } from '../config-file.js';

/** Runs the gateway until SIGINT/SIGTERM; SIGHUP reloads the configuration. */
export async function runUntilSignalled(gw: Gateway, extraStop?: () => Promise<void>): Promise<void> {
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    gw.log.info({ signal }, 'shutting down');
    await gw.stop();
    await extraStop?.();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGHUP', () => void gw.reload());
}

export function startCommand(program: Command): void {
  program
    .command('start')
    .description('run the gateway with a configuration file')
    .option('--config <file>', 'sluice.yaml')
    .action(async (o: { config?: string }) => {
      const file = findConfigFile(o.config);
      const { config } = loadConfigFile(file);
      const gw = await Gateway.start({ config, configFile: file });
      await runUntilSignalled(gw);
    });
}
