import type { AuditEvent, AuditEventInput, AuditQuery } from '../events/types.js';

export interface AppendOptions {
  /**
   * The caller does not wait on durability (a completion, a session end):
   * the events join the next commit instead of forcing one, within
   * `DEFERRED_FLUSH_MS`. Chain order stays the order of append calls.
   */
  readonly defer?: boolean;
}

/** Longest a deferred event waits for a commit to join. */
export const DEFERRED_FLUSH_MS = 5;

/**
 * The audit log. Append-only: events are never updated or deleted through
 * this interface. `append` resolves only once the events are durable
 * (committed); if it rejects with StoreError the caller must not perform
 * the action the events describe.
 */
export interface AuditStore {
  append(events: readonly AuditEventInput[], options?: AppendOptions): Promise<AuditEvent[]>;
  query(q: AuditQuery): AuditEvent[];
  /** Highest sequence number written, 0 when empty. */
  lastSeq(): number;
  /** Online, consistent copy of the whole store to `destPath`. */
  backup(destPath: string): Promise<void>;
  /** True when the last write succeeded (for /readyz). */
  healthy(): boolean;
  close(): Promise<void>;
}
