import type { EventPipeline } from '../../events/pipeline.js';
import type { Logger } from '../../observability/log.js';
import type { GatewayMetrics } from '../../observability/metrics.js';
import type { GatewayState } from '../../runtime/state.js';
import type { SessionRegistry } from '../../sessions/registry.js';
import type { CatalogCache } from './masking/catalog-cache.js';
import type { ApprovalService } from '../../approvals/service.js';

/** What the PostgreSQL adapter needs from the rest of Sluice. */
export interface PostgresAdapterContext {
  readonly log: Logger;
  readonly registry: SessionRegistry;
  readonly events: EventPipeline;
  readonly metrics: GatewayMetrics;
  /** The current configuration-derived state (swapped atomically on reload). */
  state(): GatewayState;
  /** Catalog snapshots per resource, for masking. */
  readonly catalogs: CatalogCache;
  /** HMAC key of the hash masking strategy. */
  readonly maskingKey: Buffer;
  /** Approval requests: held statements and time-boxed grants. */
  readonly approvals: ApprovalService;
}
