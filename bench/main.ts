import { writeFileSync } from 'node:fs';
import { parseArgs } from './args.js';
import { BenchError } from './errors.js';
import type { BenchOptions } from './options.js';
import { renderMarkdown, renderText } from './render.js';
import { REPO_ROOT, runBench } from './run.js';

async function main(): Promise<void> {
  let opts: BenchOptions;
  try {
    opts = parseArgs(process.argv.slice(2), REPO_ROOT);
  } catch (err) {
    const e = err as { code?: string; exitCode?: number; message: string };
    if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version') process.exit(0);
    if (!e.code?.startsWith('commander.')) process.stderr.write(`${e.message}\n`);
    process.exit(2);
  }
  const abort = new AbortController();
  const onSignal = () => {
    process.stderr.write('interrupted: stopping after the current measurement and cleaning up\n');
    abort.abort();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const log = (msg: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
  try {
    const report = await runBench(opts, { log, signal: abort.signal });
    process.stdout.write(renderText(report));
    if (opts.writeFile) {
      writeFileSync(opts.writeFile, renderMarkdown(report));
      log(`wrote ${opts.writeFile}`);
    }
  } catch (err) {
    const code = err instanceof BenchError ? ` (${err.code})` : '';
    process.stderr.write(`bench failed${code}: ${(err as Error).message}\n`);
    process.exitCode = 1;
  }
}

await main();
