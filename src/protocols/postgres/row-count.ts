import type { StatementFacts } from '../../sql/index.js';
import type { ExchangeResult } from './backend-exchange.js';
import { errorResponse, readyForQuery } from './codec/backend-serializer.js';
import { query } from './codec/frontend-serializer.js';

/** Sends one message on the session's backend connection and resolves with its answer; keeps up to `keepBytes` of it. */
export type Send = (message: Buffer, keepBytes?: number) => Promise<ExchangeResult>;

/**
 * `ran`: the statement ran for real (at or under the threshold, or it failed
 * on its own), and this is what the client gets, as if it had been sent
 * directly. `held`: it was rolled back and waits for a decision, with the
 * count when one could be read.
 */
export type CountOutcome = { readonly ran: Buffer } | { readonly held: true; readonly rows?: number };

export interface CountOptions {
  /** The client's Query message. */
  readonly statement: Buffer;
  /** The client is not in a transaction, so Sluice opens one around the count (and commits or rolls it back). */
  readonly began: boolean;
  readonly savepoint: string;
  readonly threshold: number;
  /** The command tag keyword that carries the count: DELETE, UPDATE or MERGE. */
  readonly tag: string;
  /** Largest response passed on after counting; a larger one is rolled back and held. */
  readonly keepBytes: number;
}

/**
 * The command tag that will carry the count of rows a held message changes,
 * when one can: a single DELETE, UPDATE or MERGE (or an EXECUTE of one) with
 * no data-modifying WITH. EXPLAIN ANALYZE, COPY (...) and a WITH whose outer
 * SELECT returns rows report something else, so they are held uncounted.
 */
export function countedTag(statements: readonly StatementFacts[]): string | undefined {
  if (statements.length !== 1) return undefined;
  const top = statements[0]!;
  const f = top.kind === 'execute' && top.body ? top.body : top;
  if (f.kind !== 'delete' && f.kind !== 'update' && f.kind !== 'merge') return undefined;
  // COPY (DELETE ... RETURNING) TO STDOUT is classified as the DELETE it runs, but answers with COPY.
  if (f.effects.includes('data_modifying_cte') || f.copy !== undefined) return undefined;
  return f.kind.toUpperCase();
}

/**
 * Runs the statement inside a savepoint (in a transaction of its own when
 * the client is not in one) and reads how many rows it changed: kept when at
 * or under the threshold, rolled back otherwise. Throws when the backend's
 * transaction state is no longer known (the caller must end the session).
 */
export async function countInSavepoint(send: Send, o: CountOptions): Promise<CountOutcome> {
  const q = (sql: string) => send(query(sql));
  const undo = async () => {
    const r = o.began ? await q('ROLLBACK') : await q(`ROLLBACK TO SAVEPOINT ${o.savepoint}; RELEASE SAVEPOINT ${o.savepoint}`);
    if (r.error) throw new Error(`rolling back the count failed: ${r.error.code}`);
  };
  if (o.began && (await q('BEGIN')).error) throw new Error('BEGIN failed');
  if ((await q(`SAVEPOINT ${o.savepoint}`)).error) {
    if (o.began && (await q('ROLLBACK')).error) throw new Error('ROLLBACK failed');
    // Counting is not possible here: held without a count rather than run unchecked.
    return { held: true };
  }
  const r = await send(o.statement, o.keepBytes);
  if (r.error) {
    // The statement failed on its own: that is its real outcome.
    if (o.began && (await q('ROLLBACK')).error) throw new Error('ROLLBACK failed');
    const status = o.began ? 'I' : r.status;
    return { ran: r.raw ? withStatus(r.raw, status) : Buffer.concat([errorResponse({ severity: 'ERROR', code: r.error.code, message: r.error.message }), readyForQuery(status)]) };
  }
  if (r.tags.length !== 1 || !r.tags[0]!.startsWith(`${o.tag} `)) {
    // A rule rewrote it, or the tag does not count what changed.
    await undo();
    return { held: true };
  }
  if (r.rows > o.threshold || !r.raw) {
    await undo();
    return { held: true, rows: r.rows };
  }
  if ((await q(`RELEASE SAVEPOINT ${o.savepoint}`)).error) throw new Error('RELEASE SAVEPOINT failed');
  const commit = o.began ? await q('COMMIT') : undefined;
  // A deferred constraint fails at COMMIT: the client sees that error for its statement, as in autocommit.
  if (commit?.error) {
    return { ran: Buffer.concat([r.raw.subarray(0, r.raw.length - READY_FOR_QUERY_BYTES), errorResponse({ severity: 'ERROR', code: commit.error.code, message: commit.error.message }), readyForQuery('I')]) };
  }
  return { ran: withStatus(r.raw, o.began ? 'I' : r.status) };
}

const READY_FOR_QUERY_BYTES = 6;

/** A response with its closing ReadyForQuery carrying another transaction status. */
function withStatus(raw: Buffer, status: 'I' | 'T' | 'E'): Buffer {
  const out = Buffer.from(raw);
  out[out.length - 1] = status.charCodeAt(0);
  return out;
}
