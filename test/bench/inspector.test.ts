import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { collectGarbage } from '../../bench/inspector.js';
import { stopChild, waitForPort } from '../../bench/processes.js';
import { freePort } from '../../src/devdb/free-port.js';

describe('garbage collection through the inspector', () => {
  it('frees the garbage of a real Node process', async () => {
    const port = await freePort();
    // Drops a 64 MiB array once started and reports its heap on demand.
    const child = spawn(
      process.execPath,
      [
        `--inspect=127.0.0.1:${port}`,
        '-e',
        `let junk = Array.from({ length: 1 << 20 }, (_, i) => ({ i, s: 'x' + i })); junk = null;
         process.stdin.on('data', () => process.stdout.write(process.memoryUsage().heapUsed + '\\n'));`,
      ],
      { stdio: ['pipe', 'pipe', 'ignore'] },
    );
    const heapUsed = () =>
      new Promise<number>((resolveHeap) => {
        child.stdout.once('data', (d: Buffer) => resolveHeap(Number(d.toString().trim())));
        child.stdin.write('?\n');
      });
    try {
      await waitForPort('127.0.0.1', port, { timeoutMs: 10_000, what: 'node --inspect' });
      const before = await heapUsed();
      await collectGarbage(port);
      const after = await heapUsed();
      expect(before).toBeGreaterThan(32 * 1024 * 1024);
      expect(after).toBeLessThan(before / 2);
    } finally {
      await stopChild(child);
    }
  });

  it('says so when nothing listens on the inspector port', async () => {
    await expect(collectGarbage(await freePort())).rejects.toThrow();
  });
});
