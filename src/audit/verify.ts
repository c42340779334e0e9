import { readFileSync } from 'node:fs';
import Database from 'better-sqlite3';
import type { JWK } from 'jose';
import { SluiceError } from '../errors.js';
import type { AuditEvent } from '../events/types.js';
import { verifyCheckpoint, type Checkpoint } from './checkpoint.js';
import { verifyChain } from './hash-chain.js';
import { EVENT_COLUMNS, rowToEvent, type EventRow } from './event-row.js';

/**
 * edited, deleted, reordered: an event in the middle of a chain.
 * truncated: events cut off the end, after a checkpoint signed them.
 * checkpoint_mismatch: a checkpoint no longer matches the event it signed,
 * which is what a rewrite with recomputed hashes leaves behind.
 * checkpoint_invalid: not a checkpoint signed by a trusted key.
 * checkpoint_missing: exported, but no longer in the store.
 */
export type FindingKind = 'edited' | 'deleted' | 'reordered' | 'truncated' | 'checkpoint_mismatch' | 'checkpoint_invalid' | 'checkpoint_missing';

export interface Finding {
  readonly kind: FindingKind;
  readonly chain?: string;
  readonly seq?: number;
  /** Where the checkpoint came from: "store" or "<file>:<line>". */
  readonly source?: string;
  readonly message: string;
}

export interface ChainReport {
  readonly chain: string;
  /** Events verified from the start of the chain up to the first finding (all of them when intact). */
  readonly verified: number;
  /** Highest sequence number in the store. */
  readonly lastSeq: number;
  /** Hash of the last verified event. */
  readonly headHash: string;
  readonly intact: boolean;
}

export interface VerifyReport {
  readonly ok: boolean;
  readonly chains: readonly ChainReport[];
  /** Checkpoints read (store table, export files) and how many verified and matched. */
  readonly checkpoints: { readonly store: number; readonly exported: number; readonly matched: number };
  readonly findings: readonly Finding[];
}

export interface VerifyOptions {
  readonly storePath: string;
  /** Public keys checkpoints must be signed with (Sluice's JWKS: current and previous keys). */
  readonly jwks: { keys: JWK[] };
  /** Checkpoint export files (JSON Lines) to check besides the store's own table. */
  readonly exportFiles?: readonly string[];
}

/** With the rowid: rows stored in another order than their seqs are a finding too. */
interface StoredEventRow extends EventRow {
  id: number;
}

interface CheckpointRecord {
  readonly source: string;
  readonly jws: string;
  /** The plain fields kept next to the JWS, which must equal the signed ones. */
  readonly fields: Record<string, unknown>;
}


interface ChainResult {
  readonly report: ChainReport;
  readonly finding?: Finding;
}

/** The store as read in one snapshot. */
interface StoreView {
  readonly chains: readonly ChainResult[];
  readonly lastSeq: ReadonlyMap<string, number>;
  readonly tableCheckpoints: readonly CheckpointRecord[];
  /** Stored hash of each event a checkpoint names (chain, seq), undefined when there is none. */
  readonly hashes: ReadonlyMap<string, string | undefined>;
}

const STORE = 'store';

/**
 * Verifies a Sluice store offline and read-only (a running gateway may be
 * using it): every chain from genesis, then every checkpoint, from the store
 * and from the export files, against its chain and the trusted keys.
 * Throws SluiceError when the store or an export file cannot be read.
 */
export async function verifyAuditStore(opts: VerifyOptions): Promise<VerifyReport> {
  const findings: Finding[] = [];
  // Export files before the store: a checkpoint is committed to the store
  // before it is exported, so the snapshot read next holds every event an
  // exported checkpoint names, even while the gateway keeps writing.
  const exported: CheckpointRecord[] = [];
  for (const file of opts.exportFiles ?? []) readExportFile(file, exported, findings);
  const view = readStore(opts.storePath, exported);
  for (const c of view.chains) if (c.finding) findings.push(c.finding);

  let matched = 0;
  const inStore = new Set<string>();
  // Store checkpoints first, so inStore is complete before the exported ones are looked up in it.
  for (const record of [...view.tableCheckpoints, ...exported]) {
    const checkpoint = await checkSignature(record, opts.jwks, findings);
    if (checkpoint === undefined) continue;
    const id = `${key(checkpoint.chain, checkpoint.seq)}\u0000${checkpoint.hash}`;
    if (record.source === STORE) inStore.add(id);
    else if (!inStore.has(id)) {
      findings.push({
        kind: 'checkpoint_missing',
        chain: checkpoint.chain,
        seq: checkpoint.seq,
        source: record.source,
        message: `the checkpoint of event ${checkpoint.seq} of chain "${checkpoint.chain}" at ${record.source} is not in the store: checkpoints were deleted from it`,
      });
    }
    if (matchesChain(checkpoint, record.source, view, findings)) matched++;
  }
  return {
    ok: findings.length === 0,
    chains: view.chains.map((c) => c.report),
    checkpoints: { store: view.tableCheckpoints.length, exported: exported.length, matched },
    findings,
  };
}

function readExportFile(file: string, out: CheckpointRecord[], findings: Finding[]): void {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new SluiceError(
      'checkpoints_unreadable',
      `cannot read the checkpoint file ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'}); check the path given to --checkpoints or store.checkpoints.export.file`,
    );
  }
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (lines[i].trim() === '') continue;
    const source = `${file}:${i + 1}`;
    let parsed: unknown;
    try {
      parsed = JSON.parse(lines[i]);
    } catch {
      parsed = undefined;
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed) || typeof (parsed as { jws?: unknown }).jws !== 'string') {
      findings.push({ kind: 'checkpoint_invalid', source, message: `${source} is not a checkpoint line: the export file was altered` });
      continue;
    }
    const fields = parsed as Record<string, unknown>;
    out.push({ source, jws: fields.jws as string, fields });
  }
}

function readStore(path: string, exported: readonly CheckpointRecord[]): StoreView {
  let db: Database.Database;
  try {
    db = new Database(path, { readonly: true, fileMustExist: true });
  } catch (err) {
    throw new SluiceError('store_unreadable', `cannot open the store ${path} (${(err as Error).message}); check the path given to --store or store.path`);
  }
  try {
    const tables = new Set(db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").pluck().all() as string[]);
    if (!tables.has('audit_events')) throw new SluiceError('store_not_sluice', `${path} holds no audit log: name a Sluice store (sluice.db)`);
    // One read transaction: chains and checkpoints come from one snapshot, even while a gateway appends.
    db.exec('BEGIN');
    const walk = db.prepare<[string], StoredEventRow>(`SELECT id, ${EVENT_COLUMNS} FROM audit_events WHERE chain = ? ORDER BY seq, id`);
    const byHash = db.prepare<[string, string], { seq: number }>('SELECT seq FROM audit_events WHERE chain = ? AND hash = ? ORDER BY seq LIMIT 1');
    const bySeq = db.prepare<[string, number], { hash: string }>('SELECT hash FROM audit_events WHERE chain = ? AND seq = ? ORDER BY id LIMIT 1');
    const maxSeq = db.prepare<[string], { seq: number }>('SELECT max(seq) AS seq FROM audit_events WHERE chain = ?');
    const lastSeq = new Map<string, number>();
    const chains: ChainResult[] = [];
    for (const chain of db.prepare('SELECT DISTINCT chain FROM audit_events ORDER BY chain').pluck().all() as string[]) {
      const last = maxSeq.get(chain)?.seq ?? 0;
      lastSeq.set(chain, last);
      chains.push(walkChain(chain, last, walk.iterate(chain), (hash) => byHash.get(chain, hash)?.seq));
    }
    const tableCheckpoints: CheckpointRecord[] = tables.has('audit_checkpoints')
      ? db
          .prepare<[], { chain: string; seq: number; hash: string; time: string; jws: string }>('SELECT chain, seq, hash, time, jws FROM audit_checkpoints ORDER BY id')
          .all()
          .map((r) => ({ source: STORE, jws: r.jws, fields: { chain: r.chain, seq: r.seq, hash: r.hash, time: r.time } }))
      : [];
    // Keyed by what each JWS says, unverified for now: a checkpoint whose signature fails is not compared anyway.
    const hashes = new Map<string, string | undefined>();
    for (const r of [...tableCheckpoints, ...exported]) {
      const named = namedEvent(r.jws);
      if (named !== undefined) hashes.set(key(named.chain, named.seq), bySeq.get(named.chain, named.seq)?.hash);
    }
    db.exec('COMMIT');
    return { chains, lastSeq, tableCheckpoints, hashes };
  } finally {
    if (db.inTransaction) db.exec('ROLLBACK');
    db.close();
  }
}

/**
 * verifyChain over one chain in sequence order, naming the kind of damage.
 * Besides what verifyChain finds, it finds events stored in another order
 * than their sequence numbers (row ids only grow) and data that is no longer
 * JSON.
 */
function walkChain(chain: string, lastSeq: number, rows: Iterable<StoredEventRow>, seqOfHash: (hash: string) => number | undefined): ChainResult {
  let stopped: Finding | undefined;
  let current: AuditEvent | undefined;
  function* events(): Generator<AuditEvent> {
    let prevId = 0;
    for (const r of rows) {
      if (r.id < prevId) {
        stopped = { kind: 'reordered', chain, seq: r.seq, message: `event ${r.seq} is stored before event ${r.seq - 1}: events were reordered` };
        return;
      }
      prevId = r.id;
      let data: Record<string, unknown>;
      try {
        data = JSON.parse(r.data) as Record<string, unknown>;
      } catch {
        stopped = { kind: 'edited', chain, seq: r.seq, message: `event ${r.seq} was edited: its data is no longer JSON` };
        return;
      }
      current = rowToEvent(r, data);
      yield current;
    }
  }
  const result = verifyChain(events());
  if (result.ok) {
    return { report: { chain, verified: result.count, lastSeq, headHash: result.headHash, intact: stopped === undefined }, finding: stopped };
  }
  const seq = result.seq;
  const found = (kind: FindingKind, message: string): ChainResult => ({
    report: { chain, verified: seq - 1, lastSeq, headHash: '', intact: false },
    finding: { kind, chain, seq, message },
  });
  switch (result.reason) {
    case 'missing':
      return found('deleted', current !== undefined && current.seq > seq ? `event ${seq} was deleted: the next event in the store is ${current.seq}` : `event ${seq} was deleted`);
    case 'hash_mismatch':
      return found('edited', `event ${seq} was edited: its content no longer matches its hash`);
    case 'prev_hash_mismatch': {
      const linked = current?.seq === seq ? seqOfHash(current.prevHash) : undefined;
      if (linked !== undefined && linked !== seq - 1) {
        return found('reordered', `event ${seq} was moved: it was written right after the event now numbered ${linked}, not after event ${seq - 1}: events were reordered`);
      }
      return found('edited', `event ${seq} does not link to event ${seq - 1}: one of them was altered, or events between them were deleted and the rest renumbered`);
    }
    case 'out_of_order':
    case 'wrong_chain':
      return found('reordered', `events were reordered: ${result.message}`);
  }
}


async function checkSignature(record: CheckpointRecord, jwks: { keys: JWK[] }, findings: Finding[]): Promise<Checkpoint | undefined> {
  const where = record.source === STORE ? 'a checkpoint in the store' : `the checkpoint at ${record.source}`;
  const v = await verifyCheckpoint(record.jws, jwks);
  if (!v.ok) {
    findings.push({ kind: 'checkpoint_invalid', source: record.source, message: `${where} is refused: ${v.message}` });
    return undefined;
  }
  const c = v.checkpoint;
  for (const field of ['chain', 'seq', 'hash', 'time'] as const) {
    const shown = record.fields[field];
    if (shown !== undefined && shown !== c[field]) {
      findings.push({
        kind: 'checkpoint_invalid',
        chain: c.chain,
        seq: c.seq,
        source: record.source,
        message: `${where} shows ${field} ${JSON.stringify(shown)} but signed ${JSON.stringify(c[field])}: its plain fields were altered`,
      });
      break;
    }
  }
  return c;
}

function matchesChain(c: Checkpoint, source: string, view: StoreView, findings: Finding[]): boolean {
  const where = source === STORE ? 'a checkpoint in the store' : `the checkpoint at ${source}`;
  const stored = view.hashes.get(key(c.chain, c.seq));
  const base = { chain: c.chain, seq: c.seq, source };
  if (stored === c.hash) return true;
  if (stored === undefined) {
    const last = view.lastSeq.get(c.chain) ?? 0;
    findings.push(
      c.seq > last
        ? {
            ...base,
            kind: 'truncated',
            message: `chain "${c.chain}" ends at event ${last}, but ${where} signed event ${c.seq} (${c.time}): events ${last + 1} to ${c.seq} were deleted from the end`,
          }
        : { ...base, kind: 'checkpoint_mismatch', message: `${where} signed event ${c.seq} of chain "${c.chain}", which is no longer in the store` },
    );
    return false;
  }
  findings.push({
    ...base,
    kind: 'checkpoint_mismatch',
    message: `${where} signed event ${c.seq} of chain "${c.chain}" with hash ${c.hash.slice(0, 16)}… (${c.time}), but the store has ${stored.slice(0, 16)}…: the chain up to event ${c.seq} was rewritten`,
  });
  return false;
}

/** The (chain, seq) a checkpoint JWS names, read without verifying it. */
function namedEvent(jws: string): { chain: string; seq: number } | undefined {
  try {
    const p = JSON.parse(Buffer.from(jws.split('.')[1] ?? '', 'base64url').toString('utf8')) as { chain?: unknown; seq?: unknown };
    return typeof p.chain === 'string' && Number.isSafeInteger(p.seq) ? { chain: p.chain, seq: p.seq as number } : undefined;
  } catch {
    return undefined;
  }
}

function key(chain: string, seq: number): string {
  return `${chain}\u0000${seq}`;
}
