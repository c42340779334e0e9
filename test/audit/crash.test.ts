import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { verifyChain } from '../../src/audit/hash-chain.js';
import { SqliteAuditStore } from '../../src/audit/sqlite-audit-store.js';
import type { AuditEvent } from '../../src/events/types.js';

const fixture = fileURLToPath(new URL('./fixtures/append-until-killed.ts', import.meta.url));
const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'sluice-audit-crash-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Runs the fixture until it has acknowledged `atLeast` events, then SIGKILLs it. */
function appendThenKill(path: string, synchronous: 'normal' | 'full', atLeast: number): Promise<{ startedAt: number; acked: number[] }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', fixture, path, synchronous], {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const acked: number[] = [];
    let startedAt = -1;
    let buffered = '';
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.stdout.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) {
        if (line.startsWith('ready ')) startedAt = Number(line.slice(6));
        else acked.push(Number(line));
      }
      if (acked.length >= atLeast && child.exitCode === null && !child.killed) child.kill('SIGKILL');
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (signal === 'SIGKILL') resolve({ startedAt, acked });
      else reject(new Error(`fixture exited with ${code}: ${stderr}`));
    });
  });
}

function readAll(store: SqliteAuditStore): AuditEvent[] {
  const all: AuditEvent[] = [];
  for (let page = store.query({ limit: 1000 }); page.length > 0; page = store.query({ afterSeq: page[page.length - 1].seq, limit: 1000 })) {
    all.push(...page);
  }
  return all;
}

describe('SqliteAuditStore after kill -9', () => {
  for (const synchronous of ['normal', 'full'] as const) {
    it(`keeps every acknowledged event with an intact chain (synchronous ${synchronous})`, async () => {
      const path = join(dir, 'audit.db');
      const first = await appendThenKill(path, synchronous, 400);
      const second = await appendThenKill(path, synchronous, 400);
      expect(first.startedAt).toBe(0);
      expect(second.startedAt).toBeGreaterThanOrEqual(Math.max(...first.acked));

      const store = SqliteAuditStore.open({ path, synchronous });
      try {
        const events = readAll(store);
        const present = new Set(events.map((e) => e.seq));
        const acked = [...first.acked, ...second.acked];
        expect(acked.filter((seq) => !present.has(seq))).toEqual([]);
        expect(second.acked.every((seq) => seq > second.startedAt)).toBe(true);
        expect(verifyChain(events)).toMatchObject({ ok: true, lastSeq: store.lastSeq() });
        expect(store.lastSeq()).toBeGreaterThanOrEqual(Math.max(...acked));

        const [next] = await store.append([{ type: 'config.reloaded', time: new Date().toISOString(), data: {} }]);
        expect(next.seq).toBe(events.length + 1);
        expect(next.prevHash).toBe(events[events.length - 1].hash);
      } finally {
        await store.close();
      }
    });
  }
});
