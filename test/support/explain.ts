import { spawnSync } from 'node:child_process';

/** Runs `sluice policy explain --json` from source and parses its output. */
export function runExplain(args: readonly string[], env: Record<string, string> = {}): { status: number | null; out: any; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'policy', 'explain', '--json', ...args], {
    encoding: 'utf8',
    env: { ...process.env, ...env },
  });
  return { status: r.status, out: r.stdout ? JSON.parse(r.stdout) : undefined, stderr: r.stderr };
}
