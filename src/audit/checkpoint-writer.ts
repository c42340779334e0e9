import { closeSync, fsyncSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Statement } from 'better-sqlite3';
import type { SigningKey } from '../keys/keyring.js';
import type { Logger } from '../observability/log.js';
import { describeError } from '../store/describe-error.js';
import { openSqlite, type SqliteDatabase } from '../store/sqlite.js';
import { buildCheckpoint, signCheckpoint, type SignedCheckpoint } from './checkpoint.js';

export interface CheckpointWriterOptions {
  /** The store file the audit chain lives in. */
  readonly path: string;
  readonly synchronous: 'normal' | 'full';
  readonly busyTimeoutMs?: number;
  /** The chain this gateway writes; default 'main'. */
  readonly chain?: string;
  readonly key: SigningKey;
  readonly intervalSeconds: number;
  /** Also append each checkpoint here as a JSON line (store.checkpoints.export.file). */
  readonly exportFile?: string;
  readonly log: Logger;
}

/** One line of the export file. Only `jws` is trusted; the other fields are for people reading it. */
export function exportLine(c: SignedCheckpoint): string {
  return JSON.stringify({ chain: c.chain, seq: c.seq, hash: c.hash, time: c.time, kid: c.kid, jws: c.jws }) + '\n';
}

/**
 * Writes a signed checkpoint of its chain's head every interval, when the
 * head moved: to `audit_checkpoints`, then to the export file. It is not an
 * audit event, since recording it would move the head it vouches for.
 * It reads the head from the file with its own connection, so a checkpoint
 * only ever names committed events.
 */
export class CheckpointWriter {
  private readonly db: SqliteDatabase;
  private readonly opts: CheckpointWriterOptions;
  private readonly chain: string;
  private readonly head: Statement<[string], { seq: number; hash: string }>;
  private readonly insert: Statement;
  private lastSeq: number;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> = Promise.resolve();
  private closed = false;

  static open(opts: CheckpointWriterOptions): CheckpointWriter {
    const db = openSqlite(opts.path, { synchronous: opts.synchronous, busyTimeoutMs: opts.busyTimeoutMs });
    try {
      return new CheckpointWriter(db, opts);
    } catch (err) {
      db.close();
      throw err;
    }
  }

  private constructor(db: SqliteDatabase, opts: CheckpointWriterOptions) {
    this.db = db;
    this.opts = opts;
    this.chain = opts.chain ?? 'main';
    this.head = db.prepare('SELECT seq, hash FROM audit_events WHERE chain = ? ORDER BY seq DESC LIMIT 1');
    this.insert = db.prepare('INSERT INTO audit_checkpoints (chain, seq, hash, time, kid, jws) VALUES (?, ?, ?, ?, ?, ?)');
    const last = db.prepare<[string], { seq: number | null }>('SELECT max(seq) AS seq FROM audit_checkpoints WHERE chain = ?').get(this.chain);
    this.lastSeq = last?.seq ?? 0;
  }

  /** Writes a checkpoint every interval from now on. */
  start(): void {
    if (this.closed || this.timer !== undefined) return;
    this.timer = setInterval(() => void this.checkpoint(), this.opts.intervalSeconds * 1000);
    this.timer.unref();
  }

  /**
   * Writes a checkpoint now if the head moved since the last one; resolves to
   * it, or undefined when there was nothing new or writing failed (logged).
   */
  checkpoint(): Promise<SignedCheckpoint | undefined> {
    const next = this.running.then(() => this.write());
    this.running = next;
    return next;
  }

  /** Stops the timer and writes a last checkpoint, covering the events since the previous one. */
  async stop(): Promise<void> {
    if (this.closed) return;
    clearInterval(this.timer);
    this.timer = undefined;
    await this.checkpoint();
    this.closed = true;
    this.db.close();
  }

  private async write(): Promise<SignedCheckpoint | undefined> {
    if (this.closed) return undefined;
    let signed: SignedCheckpoint;
    try {
      const head = this.head.get(this.chain);
      if (head === undefined || head.seq <= this.lastSeq) return undefined;
      signed = await signCheckpoint(buildCheckpoint({ chain: this.chain, ...head }), this.opts.key);
      this.insert.run(signed.chain, signed.seq, signed.hash, signed.time, signed.kid, signed.jws);
    } catch (err) {
      // Retried at the next interval; the export file gets nothing the store lacks, so verify can tell deletions apart.
      this.opts.log.error({ chain: this.chain, err: describeError(err) }, 'could not write an audit checkpoint to the store');
      return undefined;
    }
    this.lastSeq = signed.seq;
    const file = this.opts.exportFile;
    if (file !== undefined) {
      try {
        appendDurably(file, exportLine(signed));
      } catch (err) {
        this.opts.log.error({ chain: this.chain, seq: signed.seq, file, err: describeError(err) }, 'could not append an audit checkpoint to the export file');
      }
    }
    this.opts.log.info({ chain: signed.chain, seq: signed.seq, hash: signed.hash, kid: signed.kid }, 'audit checkpoint written');
    return signed;
  }
}

function appendDurably(file: string, line: string): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const fd = openSync(file, 'a', 0o600);
  try {
    writeSync(fd, line);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
