import type { AppendOptions, AuditStore } from '../audit/store.js';
import type { AuditEvent, AuditEventInput } from './types.js';

/**
 * The one path every event takes: durably into the audit store. `record`
 * rejects when the store cannot write; the caller must then not perform the
 * action the events describe. Recordings (issue 7) attach here.
 */
export class EventPipeline {
  constructor(private readonly store: AuditStore) {}

  record(events: readonly AuditEventInput[], options?: AppendOptions): Promise<AuditEvent[]> {
    return this.store.append(events, options);
  }
}
