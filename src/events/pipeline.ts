import type { AppendOptions, AuditStore } from '../audit/store.js';
import type { AuditEvent, AuditEventInput } from './types.js';

export type EventListener = (events: readonly AuditEvent[]) => void;

/**
 * The one path every event takes: durably into the audit store, then to
 * listeners (metrics, live views, and recordings later). `record` rejects
 * when the store cannot write; the caller must then not perform the action.
 */
export class EventPipeline {
  private readonly listeners = new Set<EventListener>();

  constructor(private readonly store: AuditStore) {}

  async record(events: readonly AuditEventInput[], options?: AppendOptions): Promise<AuditEvent[]> {
    const stored = await this.store.append(events, options);
    for (const l of this.listeners) l(stored);
    return stored;
  }

  subscribe(l: EventListener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
}
