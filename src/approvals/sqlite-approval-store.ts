import type { Statement } from 'better-sqlite3';
import { StoreError } from '../errors.js';
import type { PrincipalRef } from '../identity/principal.js';
import { describeError } from '../store/describe-error.js';
import { openSqlite, type SqliteDatabase } from '../store/sqlite.js';
import { foldStatus, type ApprovalEventRow } from './state.js';
import type { ApprovalKind, ApprovalRequest, ApprovalStatus } from './types.js';

interface EventDbRow {
  request_id: string;
  type: ApprovalEventRow['type'];
  by_issuer: string | null;
  by_subject: string | null;
  by_kind: 'person' | 'machine' | null;
  reason: string | null;
  time: string;
}

export interface ApprovalListFilter {
  readonly kind?: ApprovalKind;
  readonly requester?: PrincipalRef;
  /** Only requests that may still be pending: not past expiresAt, not denied, cancelled or ended. */
  readonly open?: boolean;
  readonly limit?: number;
}

/** A vote or end the database refused: a replay, or a second use or end. */
export class ApprovalConflict extends Error {}

/**
 * Approval requests and their decisions in the embedded store. Every write
 * runs in an IMMEDIATE transaction that re-reads the request's events before
 * checking and inserting, and the unique indexes of migration 2 refuse a
 * replayed vote or a second use even from another process, so the state a
 * check saw is the state the write lands on.
 */
export class SqliteApprovalStore {
  private readonly db: SqliteDatabase;
  private readonly insertRequest: Statement;
  private readonly insertEvent: Statement;
  private readonly selectRequest: Statement<[string], { data: string }>;
  private readonly selectEvents: Statement<[string], EventDbRow>;

  private constructor(db: SqliteDatabase) {
    this.db = db;
    this.insertRequest = db.prepare(
      'INSERT INTO approval_requests (id, kind, rule, resource, requester_issuer, requester_subject, statement_hash, created_at, expires_at, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
    );
    this.insertEvent = db.prepare('INSERT INTO approval_events (request_id, type, by_issuer, by_subject, by_kind, reason, time) VALUES (?, ?, ?, ?, ?, ?, ?)');
    this.selectRequest = db.prepare('SELECT data FROM approval_requests WHERE id = ?');
    this.selectEvents = db.prepare('SELECT request_id, type, by_issuer, by_subject, by_kind, reason, time FROM approval_events WHERE request_id = ? ORDER BY id');
  }

  static open(path: string, opts: { synchronous: 'normal' | 'full'; busyTimeoutMs?: number }): SqliteApprovalStore {
    return new SqliteApprovalStore(openSqlite(path, opts));
  }

  add(request: ApprovalRequest): void {
    this.write(() =>
      this.insertRequest.run(
        request.id,
        request.kind,
        request.rule,
        request.resource,
        request.requester.issuer,
        request.requester.subject,
        request.statement?.hash ?? null,
        request.createdAt,
        request.expiresAt,
        JSON.stringify(request),
      ),
    );
  }

  get(id: string, now = new Date()): ApprovalStatus | undefined {
    const row = this.read(() => this.selectRequest.get(id));
    if (!row) return undefined;
    return foldStatus(JSON.parse(row.data) as ApprovalRequest, this.read(() => this.selectEvents.all(id)).map(toEvent), now);
  }

  /**
   * Appends an event if `check` accepts the request's current status, in one
   * IMMEDIATE transaction. Returns the status after the write, or throws
   * what `check` threw, or ApprovalConflict when a unique index refused it.
   */
  append(id: string, event: ApprovalEventRow, check: (status: ApprovalStatus) => void, now = new Date()): ApprovalStatus {
    const tx = this.db.transaction(() => {
      const before = this.get(id, now);
      if (!before) throw new ApprovalConflict(`no approval request ${id}`);
      check(before);
      this.insertEvent.run(id, event.type, event.by?.issuer ?? null, event.by?.subject ?? null, event.by?.kind ?? null, event.reason ?? null, event.time);
      return this.get(id, now)!;
    });
    try {
      return tx.immediate();
    } catch (err) {
      if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE') throw new ApprovalConflict('already recorded');
      if (err instanceof ApprovalConflict || !(err as { code?: string }).code?.startsWith('SQLITE_')) throw err;
      throw new StoreError('store_write_failed', `the approval could not be recorded (${describeError(err)}); try again later`, { cause: err });
    }
  }

  /** Statement requests with this hash from this requester, newest first. */
  byHash(hash: string, requester: PrincipalRef, now = new Date()): ApprovalStatus[] {
    const ids = this.read(() =>
      this.db
        .prepare('SELECT id FROM approval_requests WHERE statement_hash = ? AND requester_issuer = ? AND requester_subject = ? ORDER BY created_at DESC, id DESC LIMIT 50')
        .all(hash, requester.issuer, requester.subject) as { id: string }[],
    );
    return ids.map((r) => this.get(r.id, now)!);
  }

  list(filter: ApprovalListFilter = {}, now = new Date()): ApprovalStatus[] {
    const where: string[] = [];
    const args: unknown[] = [];
    if (filter.kind) {
      where.push('kind = ?');
      args.push(filter.kind);
    }
    if (filter.requester) {
      where.push('requester_issuer = ? AND requester_subject = ?');
      args.push(filter.requester.issuer, filter.requester.subject);
    }
    if (filter.open) {
      where.push("expires_at > ? AND NOT EXISTS (SELECT 1 FROM approval_events e WHERE e.request_id = approval_requests.id AND e.type IN ('deny', 'cancel', 'expire'))");
      args.push(now.toISOString());
    }
    const limit = Math.min(Math.max(filter.limit ?? 100, 1), 1000);
    const sql = `SELECT id FROM approval_requests ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY created_at DESC, id DESC LIMIT ${limit}`;
    const ids = this.read(() => this.db.prepare(sql).all(...args) as { id: string }[]);
    return ids.map((r) => this.get(r.id, now)!);
  }

  /** Every request nothing has ended yet (no denial, use, cancel or expiry recorded), whatever its age: what a restart must look after. */
  unfinished(now = new Date()): ApprovalStatus[] {
    const ids = this.read(
      () =>
        this.db
          .prepare("SELECT id FROM approval_requests r WHERE NOT EXISTS (SELECT 1 FROM approval_events e WHERE e.request_id = r.id AND e.type IN ('deny', 'use', 'cancel', 'expire')) ORDER BY created_at")
          .all() as { id: string }[],
    );
    return ids.map((r) => this.get(r.id, now)!);
  }

  close(): void {
    this.db.close();
  }

  private read<T>(fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      throw new StoreError('store_read_failed', `approvals could not be read (${describeError(err)}); try again later`, { cause: err });
    }
  }

  private write(fn: () => unknown): void {
    try {
      fn();
    } catch (err) {
      throw new StoreError('store_write_failed', `the approval request could not be recorded (${describeError(err)}); try again later`, { cause: err });
    }
  }
}

function toEvent(r: EventDbRow): ApprovalEventRow {
  return {
    type: r.type,
    time: r.time,
    ...(r.by_issuer !== null && r.by_subject !== null ? { by: { issuer: r.by_issuer, subject: r.by_subject, kind: r.by_kind ?? 'person' } } : {}),
    ...(r.reason !== null ? { reason: r.reason } : {}),
  };
}
