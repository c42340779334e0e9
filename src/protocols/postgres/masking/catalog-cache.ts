import type { CatalogSnapshot } from '../../../masking/catalog.js';
import { connectBackend, type BackendTarget } from '../backend/connect.js';
import { terminate } from '../codec/frontend-serializer.js';
import { loadCatalog } from './load-catalog.js';

interface Entry {
  snapshot?: CatalogSnapshot;
  loadedAt: number;
  stale: boolean;
  loading?: Promise<CatalogSnapshot>;
}

export type CatalogLoader = (target: BackendTarget) => Promise<CatalogSnapshot>;

/** Reads a resource's catalog over a connection of its own, with the credential of the session that needs it. */
export const loadCatalogOver: CatalogLoader = async (target) => {
  const conn = await connectBackend(target, { application_name: 'sluice-catalog' });
  try {
    return await loadCatalog(conn);
  } finally {
    conn.socket.end(terminate());
    conn.socket.destroySoon();
  }
};

/**
 * Catalog snapshots per resource, shared by its sessions. A snapshot goes
 * stale after DDL through Sluice, when a result names a relation it does
 * not know, or after `ttlMs` (DDL made around Sluice); masked sessions wait
 * for a fresh one before their next statement is judged.
 */
export class CatalogCache {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly loader: CatalogLoader = loadCatalogOver,
    private readonly ttlMs = 30_000,
  ) {}

  /** The snapshot to judge with now, or undefined when it must be (re)loaded first. */
  fresh(resource: string): CatalogSnapshot | undefined {
    const e = this.entries.get(resource);
    if (!e?.snapshot || e.stale || Date.now() - e.loadedAt > this.ttlMs) return undefined;
    return e.snapshot;
  }

  load(resource: string, target: BackendTarget): Promise<CatalogSnapshot> {
    const e = this.entries.get(resource) ?? { loadedAt: 0, stale: true };
    this.entries.set(resource, e);
    if (e.loading) return e.loading;
    const started = Date.now();
    e.stale = false;
    const loading = this.loader(target).then(
      (snapshot) => {
        e.loading = undefined;
        e.snapshot = snapshot;
        e.loadedAt = started;
        return snapshot;
      },
      (err: unknown) => {
        e.loading = undefined;
        e.stale = true;
        throw err;
      },
    );
    e.loading = loading;
    return loading;
  }

  /** Milliseconds since the snapshot in use was read; Infinity when there is none. */
  age(resource: string): number {
    const e = this.entries.get(resource);
    return e?.snapshot ? Date.now() - e.loadedAt : Infinity;
  }

  invalidate(resource: string): void {
    const e = this.entries.get(resource);
    if (e) e.stale = true;
  }
}
