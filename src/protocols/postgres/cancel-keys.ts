import { randomInt } from 'node:crypto';
import type { BackendTarget } from './backend/connect.js';

export interface CancelEntry {
  readonly target: Pick<BackendTarget, 'host' | 'port' | 'tls' | 'connectTimeoutMs'>;
  readonly backendKey: { readonly pid: number; readonly secret: number };
  /** Set once the session exists: a cancel may end its wait for an approval instead. */
  session?: { cancelHeld(): boolean };
}

/**
 * Sluice gives each client its own BackendKeyData, so the backend's process
 * id and secret never leave Sluice, and a CancelRequest only reaches the
 * backend when it names a live session's exact key pair.
 */
export class CancelKeys {
  private readonly entries = new Map<string, CancelEntry>();

  issue(entry: CancelEntry): { pid: number; secret: number } {
    for (;;) {
      const key = { pid: randomInt(1, 2 ** 31 - 1), secret: randomInt(-(2 ** 31), 2 ** 31 - 1) };
      const k = keyOf(key.pid, key.secret);
      if (!this.entries.has(k)) {
        this.entries.set(k, entry);
        return key;
      }
    }
  }

  lookup(pid: number, secret: number): CancelEntry | undefined {
    return this.entries.get(keyOf(pid, secret));
  }

  release(key: { pid: number; secret: number }): void {
    this.entries.delete(keyOf(key.pid, key.secret));
  }
}

/** The wire carries both as 32-bit fields; compare them as unsigned whatever sign a parser gave them. */
function keyOf(pid: number, secret: number): string {
  return `${pid >>> 0}:${secret >>> 0}`;
}
