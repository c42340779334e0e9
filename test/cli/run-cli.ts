import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { collectOutput } from '../support/clients.js';
import { testPostgres } from '../support/pg-env.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface CliRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** The environment the base test config's secret references need. */
export function secretEnv(): Record<string, string> {
  const pg = testPostgres();
  return {
    SLUICE_TEST_READER_PW: pg.roles.reader.password,
    SLUICE_TEST_WRITER_PW: pg.roles.writer.password,
    SLUICE_TEST_MIGRATOR_PW: pg.roles.migrator.password,
  };
}

/**
 * Starts the CLI from source (no stale dist/), with only the environment
 * given, so a test sees exactly what a user's shell would.
 */
export function spawnCli(args: string[], env: Record<string, string> = {}): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', NODE_NO_WARNINGS: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** Runs one CLI command to completion. */
export function runCli(args: string[], env: Record<string, string> = {}, timeoutMs = 30_000): Promise<CliRun> {
  return collectOutput(spawnCli(args, env), timeoutMs);
}
