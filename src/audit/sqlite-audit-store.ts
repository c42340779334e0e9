import { dirname } from 'node:path';
import type { Statement, Transaction } from 'better-sqlite3';
import { SluiceError, StoreError } from '../errors.js';
import type { AuditEvent, AuditEventInput, AuditQuery } from '../events/types.js';
import { backupSqlite } from '../store/backup.js';
import { describeError } from '../store/describe-error.js';
import { openSqlite, type SqliteDatabase } from '../store/sqlite.js';
import { canonicalJson, eventHash, GENESIS_HASH } from './hash-chain.js';
import { DEFERRED_FLUSH_MS, type AppendOptions, type AuditStore } from './store.js';
import { EVENT_COLUMNS, rowToEvent, type EventRow } from './event-row.js';

export interface SqliteAuditStoreOptions {
  readonly path: string;
  readonly synchronous: 'normal' | 'full';
  /** The hash chain this writer extends; one per writer instance. Default 'main'. */
  readonly chain?: string;
  /** See SqliteOptions.busyTimeoutMs. */
  readonly busyTimeoutMs?: number;
}

/** Counters since open, for metrics and for tests that observe group commit. */
export interface AuditStoreStats {
  readonly commits: number;
  readonly failedCommits: number;
  readonly events: number;
}

type Draft = { -readonly [K in keyof AuditEvent]: AuditEvent[K] };

interface PendingAppend {
  readonly drafts: Draft[];
  /** canonicalJson(data) per draft, computed once at append time. */
  readonly dataJson: string[];
  readonly resolve: (events: AuditEvent[]) => void;
  readonly reject: (err: unknown) => void;
}

interface Head {
  seq: number;
  hash: string;
}


const COLUMNS = EVENT_COLUMNS;
const CHAIN_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const DEFAULT_LIMIT = 100;
const MAX_LIMIT = 1000;

/**
 * The embedded audit log: one SQLite file, one hash chain per writer.
 *
 * Group commit: appends made in the same tick are written in one transaction
 * on the next setImmediate, so a busy gateway pays one commit (and, with
 * synchronous 'full', one fsync) per tick rather than per event. Deferred
 * appends (nobody waits on them) join the next commit instead of forcing one.
 * Each caller's promise settles only after COMMIT has returned. (A writer
 * thread was measured and rejected: on 2 cores its message round trip cost
 * more than the commits it moved off this thread; see docs/BENCHMARKS.md.)
 */
export class SqliteAuditStore implements AuditStore {
  private readonly db: SqliteDatabase;
  private readonly path: string;
  private readonly chain: string;
  private readonly insert: Statement;
  private readonly headStatement: Statement<[string], { seq: number; hash: string }>;
  private readonly writeBatch: Transaction<(batch: PendingAppend[]) => Head>;
  private readonly queries = new Map<string, Statement<unknown[], EventRow>>();
  private readonly backups = new Set<Promise<unknown>>();
  private head: Head = { seq: 0, hash: GENESIS_HASH };
  private pending: PendingAppend[] = [];
  private immediate: NodeJS.Immediate | undefined;
  private deferred: NodeJS.Timeout | undefined;
  private lastWriteOk = true;
  private closed = false;
  private commits = 0;
  private failedCommits = 0;
  private eventsAppended = 0;

  static open(opts: SqliteAuditStoreOptions): SqliteAuditStore {
    const chain = opts.chain ?? 'main';
    if (!CHAIN_NAME.test(chain)) {
      throw new StoreError(
        'store_chain_invalid',
        `audit chain name "${chain}" is invalid: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit.`,
      );
    }
    const db = openSqlite(opts.path, { synchronous: opts.synchronous, busyTimeoutMs: opts.busyTimeoutMs });
    try {
      return new SqliteAuditStore(db, opts.path, chain);
    } catch (err) {
      db.close();
      throw err;
    }
  }

  private constructor(db: SqliteDatabase, path: string, chain: string) {
    this.db = db;
    this.path = path;
    this.chain = chain;
    this.insert = db.prepare(`INSERT INTO audit_events (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`);
    this.headStatement = db.prepare('SELECT seq, hash FROM audit_events WHERE chain = ? ORDER BY seq DESC LIMIT 1');
    this.writeBatch = db.transaction((batch: PendingAppend[]): Head => {
      let seq = this.head.seq;
      let prev = this.head.hash;
      for (const p of batch) {
        for (let i = 0; i < p.drafts.length; i++) {
          const d = p.drafts[i];
          d.seq = ++seq;
          d.prevHash = prev;
          d.hash = eventHash(prev, d, p.dataJson[i]);
          this.insert.run(
            d.chain,
            d.seq,
            d.type,
            d.time,
            d.sessionId ?? null,
            d.principal?.issuer ?? null,
            d.principal?.subject ?? null,
            d.principal?.kind ?? null,
            d.resource ?? null,
            p.dataJson[i],
            d.prevHash,
            d.hash,
          );
          prev = d.hash;
        }
      }
      return { seq, hash: prev };
    });
    this.reloadHead();
  }

  append(events: readonly AuditEventInput[], options?: AppendOptions): Promise<AuditEvent[]> {
    if (this.closed) return Promise.reject(closedError());
    if (events.length === 0) return Promise.resolve([]);
    const drafts = new Array<Draft>(events.length);
    const dataJson = new Array<string>(events.length);
    try {
      for (let i = 0; i < events.length; i++) {
        drafts[i] = this.draft(events[i]);
        dataJson[i] = canonicalJson(events[i].data);
      }
    } catch (err) {
      return Promise.reject(
        new StoreError(
          'audit_event_invalid',
          `an audit event could not be recorded (${describeError(err)}); the statement was not run. This is a bug in Sluice: please report it.`,
          { cause: err },
        ),
      );
    }
    return new Promise<AuditEvent[]>((resolve, reject) => {
      this.pending.push({ drafts, dataJson, resolve, reject });
      if (options?.defer) {
        if (this.immediate === undefined && this.deferred === undefined) {
          this.deferred = setTimeout(this.flush, DEFERRED_FLUSH_MS);
          this.deferred.unref();
        }
      } else {
        this.immediate ??= setImmediate(this.flush);
      }
    });
  }

  query(q: AuditQuery): AuditEvent[] {
    if (this.closed) throw closedError();
    const where = ['chain = ?'];
    const params: unknown[] = [this.chain];
    const add = (clause: string, value: unknown): void => {
      where.push(clause);
      params.push(value);
    };
    if (q.afterSeq !== undefined) add('seq > ?', q.afterSeq);
    if (q.beforeSeq !== undefined) add('seq < ?', q.beforeSeq);
    if (q.types !== undefined && q.types.length > 0) add('type IN (SELECT value FROM json_each(?))', JSON.stringify(q.types));
    if (q.sessionId !== undefined) add('session_id = ?', q.sessionId);
    if (q.subject !== undefined) add('subject = ?', q.subject);
    if (q.resource !== undefined) add('resource = ?', q.resource);
    if (q.since !== undefined) add('time >= ?', queryTime(q.since, 'since'));
    if (q.until !== undefined) add('time < ?', queryTime(q.until, 'until'));
    if (q.text !== undefined && q.text !== '') add("data LIKE '%' || ? || '%' ESCAPE '\\'", likeNeedle(q.text));
    params.push(queryLimit(q.limit));
    const sql = `SELECT ${COLUMNS} FROM audit_events WHERE ${where.join(' AND ')} ORDER BY seq ${q.order === 'desc' ? 'DESC' : 'ASC'} LIMIT ?`;
    let statement = this.queries.get(sql);
    if (statement === undefined) {
      statement = this.db.prepare<unknown[], EventRow>(sql);
      this.queries.set(sql, statement);
    }
    return statement.all(...params).map((r) => rowToEvent(r, JSON.parse(r.data) as Record<string, unknown>));
  }

  lastSeq(): number {
    return this.head.seq;
  }

  async backup(destPath: string): Promise<void> {
    if (this.closed) throw closedError();
    let running: Promise<unknown> | undefined;
    try {
      running = backupSqlite(this.db, destPath);
      this.backups.add(running);
      await running;
    } catch (err) {
      throw new StoreError(
        'store_backup_failed',
        `could not back up the audit store to ${destPath} (${describeError(err)}). Check disk space and permissions of ${dirname(destPath)}.`,
        { cause: err },
      );
    } finally {
      if (running !== undefined) this.backups.delete(running);
    }
  }

  /**
   * False while the last write failed. Readiness probes call this, and a
   * gateway out of rotation writes nothing, so when unhealthy it probes the
   * write lock itself (without waiting), or writes what is pending, to
   * notice when writing works again.
   */
  healthy(): boolean {
    if (this.closed) return false;
    if (this.lastWriteOk || this.db.inTransaction) return this.lastWriteOk;
    // Appends are waiting (deferred ones may wait a few milliseconds): writing them is the probe.
    if (this.pending.length > 0) this.flush();
    else this.lastWriteOk = this.canTakeWriteLock();
    return this.lastWriteOk;
  }

  private canTakeWriteLock(): boolean {
    const timeout = this.db.pragma('busy_timeout', { simple: true }) as number;
    try {
      this.db.pragma('busy_timeout = 0');
      this.db.exec('BEGIN IMMEDIATE');
      this.db.exec('ROLLBACK');
      return true;
    } catch {
      return false;
    } finally {
      this.db.pragma(`busy_timeout = ${timeout}`);
    }
  }

  stats(): AuditStoreStats {
    return { commits: this.commits, failedCommits: this.failedCommits, events: this.eventsAppended };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.immediate !== undefined || this.deferred !== undefined) {
      clearImmediate(this.immediate);
      clearTimeout(this.deferred);
      this.flush();
    }
    await Promise.allSettled(this.backups);
    this.db.close();
  }

  private readonly flush = (): void => {
    this.immediate = undefined;
    clearTimeout(this.deferred);
    this.deferred = undefined;
    const batch = this.pending;
    if (batch.length === 0) return;
    this.pending = [];
    let head: Head;
    try {
      head = this.writeBatch.immediate(batch);
    } catch (err) {
      this.failedCommits++;
      this.lastWriteOk = false;
      // A failed COMMIT can still have reached the file (an fsync error after
      // the WAL write): take the head from the file, not from memory.
      this.reloadHead();
      const error = new StoreError(
        'store_write_failed',
        `the audit store could not write (${describeError(err)}); the statement was not run. Check disk space and permissions of ${this.path}`,
        { cause: err },
      );
      for (const p of batch) p.reject(error);
      return;
    }
    this.head = head;
    this.commits++;
    this.lastWriteOk = true;
    for (const p of batch) {
      this.eventsAppended += p.drafts.length;
      p.resolve(p.drafts);
    }
  };

  private reloadHead(): void {
    try {
      const row = this.headStatement.get(this.chain);
      this.head = row === undefined ? { seq: 0, hash: GENESIS_HASH } : { seq: row.seq, hash: row.hash };
    } catch {
      // Keep the head we had. Should the file have moved past it, the insert
      // trigger refuses the next write, so the store stays fail-closed.
    }
  }

  private draft(e: AuditEventInput): Draft {
    if (typeof e.type !== 'string' || e.type.length === 0) invalid('type', 'a non-empty string');
    if (e.data === null || typeof e.data !== 'object' || Array.isArray(e.data)) {
      invalid('data', 'an object');
    }
    const d: Draft = {
      seq: 0,
      chain: this.chain,
      type: e.type,
      time: isoTime(e.time, 'time'),
      data: e.data,
      prevHash: '',
      hash: '',
    };
    if (e.sessionId != null) d.sessionId = requireString(e.sessionId, 'sessionId');
    if (e.principal != null) {
      // Only the reference goes into the log, even if a full Principal (with
      // claims) was passed.
      const { issuer, subject, kind } = e.principal;
      d.principal = {
        issuer: requireString(issuer, 'principal.issuer'),
        subject: requireString(subject, 'principal.subject'),
        kind: kind === 'machine' ? 'machine' : kind === 'person' ? 'person' : invalid('principal.kind', "'person' or 'machine'"),
      };
    }
    if (e.resource != null) d.resource = requireString(e.resource, 'resource');
    return d;
  }
}


/**
 * Times are stored as UTC with milliseconds (toISOString), so that string
 * comparison in SQL orders them correctly whatever offset a producer used.
 */
function isoTime(value: unknown, field: string): string {
  const ms = typeof value === 'string' ? Date.parse(value) : Number.NaN;
  if (Number.isNaN(ms)) throw new TypeError(`${field} must be an ISO-8601 timestamp`);
  return new Date(ms).toISOString();
}

function queryTime(value: string, field: 'since' | 'until'): string {
  try {
    return isoTime(value, field);
  } catch {
    throw new SluiceError('audit_query_invalid', `${field} must be an ISO-8601 time such as 2025-01-31T12:00:00Z.`);
  }
}

function queryLimit(limit: number | undefined): number {
  if (limit === undefined || !Number.isFinite(limit)) return DEFAULT_LIMIT;
  return Math.min(Math.max(Math.trunc(limit), 1), MAX_LIMIT);
}

/**
 * Data is stored as JSON, so quotes, backslashes and control characters in
 * it are escaped: search for the escaped form, then escape LIKE's wildcards.
 * LIKE makes the match case-insensitive for ASCII letters.
 */
function likeNeedle(text: string): string {
  return JSON.stringify(text).slice(1, -1).replace(/[\\%_]/g, '\\$&');
}

function requireString(value: unknown, field: string): string {
  return typeof value === 'string' ? value : invalid(field, 'a string');
}

function invalid(field: string, expected: string): never {
  throw new TypeError(`${field} must be ${expected}`);
}

function closedError(): StoreError {
  return new StoreError(
    'store_closed',
    'the audit store is closed; the statement was not run. Sluice is shutting down: reconnect once it is running again.',
  );
}
