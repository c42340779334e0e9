import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort } from '../../src/devdb/free-port.js';
import { startSluice } from '../../bench/sluice-process.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A stand-in repository whose bin/sluice.js is the given script. */
function fakeRoot(script: string): string {
  const root = mkdtempSync(join(tmpdir(), 'sluice-bench-root-'));
  dirs.push(root);
  mkdirSync(join(root, 'bin'));
  writeFileSync(join(root, 'bin', 'sluice.js'), script);
  return root;
}

async function start(root: string) {
  const postgresPort = await freePort();
  return startSluice({
    root,
    dir: join(root, 'data'),
    config: { server: { postgres: { listen: `127.0.0.1:${postgresPort}` } } },
    postgresPort,
    httpPort: await freePort(),
    backendPassword: 'not-a-real-password',
    database: 'bench',
  });
}

describe('starting Sluice for the benchmark', () => {
  it('turns a gateway that exits at start into an unavailable reason carrying its log', async () => {
    const root = fakeRoot("console.log(JSON.stringify({ level: 50, msg: 'resources[0].upstream.port: expected a number' }));\nprocess.exit(1);\n");
    const err = await start(root).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'bench_sluice_unavailable' });
    expect((err as Error).message).toMatch(/exited before listening/);
    expect((err as Error).message).toContain('expected a number');
    expect((err as Error).message).not.toContain('not-a-real-password');
  });

  it('refuses a gateway whose token command prints no JWT', async () => {
    // Listens on the port given in the config file for `start`, prints nothing useful for `token`.
    const root = fakeRoot(`
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
const [cmd, , file] = process.argv.slice(2);
if (cmd === 'start') {
  const port = Number(/listen: 127\\.0\\.0\\.1:(\\d+)/.exec(readFileSync(file, 'utf8'))[1]);
  createServer().listen(port, '127.0.0.1');
  process.on('SIGTERM', () => process.exit(0));
} else {
  console.log('no token today');
}
`);
    writeFileSync(join(root, 'package.json'), '{"type":"module"}');
    const err = await start(root).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'bench_sluice_unavailable' });
    expect((err as Error).message).toMatch(/printed no JWT/);
  });
});
