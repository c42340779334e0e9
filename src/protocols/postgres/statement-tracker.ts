import { createHash } from 'node:crypto';

/**
 * Follows the conversation between client and backend to know which
 * statement each response belongs to, so every statement gets one
 * `statement.started` and one `statement.completed`. It is pure: the relay
 * feeds it parsed messages and emits the events it returns.
 *
 * Every Query and every Sync is answered by exactly one ReadyForQuery, so the
 * tracker keeps a FIFO of such units. Extended-protocol messages before a
 * Sync form one open unit; the backend may answer them before the Sync
 * arrives (Flush), so the unit is queued as soon as its first message is.
 *
 * While the backend is in copy-in mode it ignores Sync and Flush (libpq
 * sends Sync right after an extended COPY's Execute, and again after
 * CopyDone), so those must not open or close units either.
 */

export interface StatementStart {
  readonly id: number;
  readonly protocol: 'simple' | 'extended';
  readonly text: string;
  readonly statementName?: string;
  readonly portal?: string;
  readonly params?: readonly (string | null)[];
  /** The guard rule that allowed or denied the statement's text. */
  readonly rule?: string;
}

export interface StatementEnd {
  readonly id: number;
  readonly tags: readonly string[];
  /** Rows affected or returned, summed over command tags; null when no tag carries a count. */
  readonly rows: number | null;
  readonly error?: { readonly sqlstate: string; readonly message: string };
  /** The statement never ran because an earlier message of its unit failed. */
  readonly skipped?: boolean;
  /** Execute with a row limit stopped at the limit (PortalSuspended); the portal may be executed again. */
  readonly suspended?: boolean;
  readonly durationMs: number;
}

interface Running {
  readonly start: StatementStart;
  readonly t0: number;
  readonly maxRows: number;
  tags: string[];
  rows: number | null;
  error?: { sqlstate: string; message: string };
  done: boolean;
}

interface Unit {
  readonly kind: 'query' | 'extended';
  readonly statements: Running[];
  closed: boolean;
  /** A Parse or Bind failure that arrived before the client sent the Execute it stops. */
  uncharged?: { sqlstate: string; message: string };
}

interface Portal {
  readonly statement: string;
  readonly text: string;
  /** As recorded: truncated, redacted by type. */
  readonly params: (string | null)[];
  /** As sent; frames are never written to after they are read, so keeping views of them is safe. */
  readonly bound: { readonly types: readonly number[]; readonly formats: readonly number[]; readonly values: readonly (Buffer | null)[] };
  readonly rule?: string;
}

interface Prepared {
  readonly text: string;
  readonly paramTypes: readonly number[];
  readonly rule?: string;
}

export interface TrackerOptions {
  /** Type OIDs whose bind values are recorded as [redacted]. */
  readonly redactTypeOids: ReadonlySet<number>;
  /** Longest recorded parameter value, in characters. */
  readonly maxParamChars: number;
  readonly now?: () => number;
}

const REDACTED = '[redacted]';
const BYTEA_OID = 17;

export class StatementTracker {
  private nextId = 1;
  private readonly units: Unit[] = [];
  private readonly prepared = new Map<string, Prepared>();
  private readonly portals = new Map<string, Portal>();
  /**
   * Parses sent but not yet answered by ParseComplete, oldest first, with
   * what they replaced: a Parse the backend rejects (a syntax error, or a
   * name that already exists) must not change what later Executes record.
   */
  private tentative: { unit: Unit; name: string; previous?: Prepared; rejected: boolean }[] = [];
  private readonly now: () => number;
  private queuedUnits = 0;
  private answered = 0;
  /** Transaction status from the last ReadyForQuery. */
  status: 'I' | 'T' | 'E' = 'I';
  /** The backend is in copy-in mode and the client has not yet ended the copy. */
  private copying = false;
  /** CopyDone/CopyFail the client sent before the backend's CopyInResponse arrived. */
  private earlyCopyEnds = 0;

  constructor(private readonly opts: TrackerOptions) {
    this.now = opts.now ?? (() => performance.now());
  }

  /** Units sent to the backend and not yet answered by ReadyForQuery. */
  get pending(): number {
    return this.units.length;
  }

  /** Units queued so far; the unit the last client message joined has this ordinal. */
  get currentUnit(): number {
    return this.queuedUnits;
  }

  /** Every unit before the newest is complete (Query, or ended by Sync), so the backend will answer them without more from the client. */
  get earlierUnitsClosed(): boolean {
    return this.units.slice(0, -1).every((u) => u.closed);
  }

  /** Units answered by ReadyForQuery so far: the unit with ordinal n is done once this reaches n. */
  get answeredUnits(): number {
    return this.answered;
  }

  query(text: string, rule?: string): StatementStart {
    this.copying = false;
    const start: StatementStart = { id: this.nextId++, protocol: 'simple', text, ...(rule !== undefined ? { rule } : {}) };
    this.units.push({ kind: 'query', statements: [this.running(start, 0)], closed: true });
    this.queuedUnits++;
    return start;
  }

  /** Undoes the last `query` when it was not sent after all. */
  withdrawLastQuery(): void {
    const last = this.units[this.units.length - 1];
    if (last?.kind === 'query') {
      this.units.pop();
      this.queuedUnits--;
    }
  }

  parse(name: string, text: string, paramTypes: readonly number[], rule?: string): void {
    const unit = this.openExtended();
    // PostgreSQL refuses to redefine an existing named statement (42P05); the old text stays in force.
    const rejected = name !== '' && this.prepared.has(name);
    this.tentative.push({ unit, name, previous: this.prepared.get(name), rejected });
    if (!rejected) this.prepared.set(name, { text, paramTypes, rule });
  }

  /** ParseComplete: the oldest outstanding Parse took effect. */
  parseComplete(): void {
    this.tentative.shift();
  }

  bind(portal: string, statement: string, paramFormats: readonly number[], params: readonly (Buffer | null)[]): void {
    this.openExtended();
    const types = this.prepared.get(statement)?.paramTypes ?? [];
    const values = params.map((v, i) => {
      if (v === null) return null;
      const type = types[i] ?? 0;
      const binary = (paramFormats.length === 1 ? paramFormats[0] : paramFormats[i] ?? 0) === 1;
      if (this.opts.redactTypeOids.has(type)) return REDACTED;
      // Drivers such as node-postgres send Buffers as binary without declaring a type: treat them as bytea.
      if (binary && type === 0 && this.opts.redactTypeOids.has(BYTEA_OID)) return REDACTED;
      const s = binary ? `\\x${v.subarray(0, this.opts.maxParamChars / 2).toString('hex')}` : v.toString('utf8');
      return s.length > this.opts.maxParamChars ? `${s.slice(0, this.opts.maxParamChars)}…` : s;
    });
    // The portal keeps the text it was bound to, even if the statement name is reused before Execute.
    const prepared = this.prepared.get(statement);
    this.portals.set(portal, { statement, text: prepared?.text ?? '', params: values, bound: { types, formats: paramFormats, values: params }, rule: prepared?.rule });
  }

  execute(portal: string, maxRows = 0): StatementStart {
    const unit = this.openExtended();
    const bound = this.portals.get(portal);
    const text = bound?.text ?? '';
    const start: StatementStart = {
      id: this.nextId++,
      protocol: 'extended',
      text,
      statementName: bound?.statement || undefined,
      portal: portal || undefined,
      params: bound?.params,
      ...(bound?.rule !== undefined ? { rule: bound.rule } : {}),
    };
    const r = this.running(start, maxRows);
    if (unit.uncharged) {
      r.error = unit.uncharged;
      unit.uncharged = undefined;
    }
    unit.statements.push(r);
    return start;
  }

  /**
   * sha256 of the exact parameters the portal was bound with (declared
   * types, formats, bytes): what an approval of its statement is bound to.
   * Computed on demand, since only held statements need it.
   */
  paramsDigest(portal: string): string | undefined {
    const b = this.portals.get(portal)?.bound;
    return b ? digestParams(b.types, b.formats, b.values) : undefined;
  }

  /** Describe, Close and Flush belong to the open unit but start nothing. */
  other(kind: 'describe' | 'flush' | { close: 'S' | 'P'; name: string }): void {
    if (kind === 'flush' && this.copying) return;
    this.openExtended();
    if (typeof kind === 'object') {
      if (kind.close === 'S') this.prepared.delete(kind.name);
      else this.portals.delete(kind.name);
    }
  }

  sync(): void {
    if (this.copying) return;
    const last = this.units[this.units.length - 1];
    if (last && last.kind === 'extended' && !last.closed) last.closed = true;
    else {
      this.units.push({ kind: 'extended', statements: [], closed: true });
      this.queuedUnits++;
    }
  }

  /** CommandComplete: completes the current statement of the head unit (simple queries collect all tags). */
  commandComplete(tag: string): StatementEnd | undefined {
    const unit = this.units[0];
    if (!unit) return undefined;
    const rows = rowsOf(tag);
    if (unit.kind === 'query') {
      const r = unit.statements[0];
      r.tags.push(tag);
      if (rows !== null) r.rows = (r.rows ?? 0) + rows;
      return undefined;
    }
    const r = unit.statements.find((s) => !s.done);
    if (!r) return undefined;
    r.tags.push(tag);
    r.rows = rows;
    return this.finish(r);
  }

  /** EmptyQueryResponse: the current extended statement ends without a tag. */
  endWithoutTag(): StatementEnd | undefined {
    const unit = this.units[0];
    if (!unit || unit.kind === 'query') return undefined;
    const r = unit.statements.find((s) => !s.done);
    return r ? this.finish(r) : undefined;
  }

  /** PortalSuspended: the backend stops only after exactly maxRows rows, so that is the count. */
  portalSuspended(): StatementEnd | undefined {
    const unit = this.units[0];
    if (!unit || unit.kind === 'query') return undefined;
    const r = unit.statements.find((s) => !s.done);
    if (!r) return undefined;
    r.rows = r.maxRows;
    return this.finish(r, false, true);
  }

  /**
   * CopyInResponse. Every client message since the COPY began can only be
   * CopyData, Flush or Sync until the client ends the copy, and the backend
   * ignores the Syncs: undo the units they closed or opened.
   */
  copyIn(): void {
    if (this.earlyCopyEnds > 0) {
      this.earlyCopyEnds--;
      return;
    }
    const head = this.units[0];
    if (!head) return;
    if (this.units.slice(1).some((u) => u.statements.length > 0)) return;
    // The Syncs' units are never answered: give their ordinals back so the count stays aligned with ReadyForQuery.
    this.queuedUnits -= this.units.length - 1;
    this.units.length = 1;
    if (head.kind === 'extended') head.closed = false;
    this.copying = true;
  }

  /** The client sent CopyDone or CopyFail. */
  copyEnd(): void {
    if (this.copying) this.copying = false;
    else this.earlyCopyEnds++;
  }

  error(sqlstate: string, message: string): StatementEnd | undefined {
    const unit = this.units[0];
    if (!unit) return undefined;
    if (unit.kind === 'query') {
      unit.statements[0].error = { sqlstate, message };
      return undefined;
    }
    this.undoTentativeParses(unit);
    const r = unit.statements.find((s) => !s.done);
    if (!r) {
      if (!unit.closed) unit.uncharged ??= { sqlstate, message };
      return undefined;
    }
    r.error = { sqlstate, message };
    return this.finish(r);
  }

  /** After an error the backend skips the rest of the unit: its unanswered Parses never took effect. */
  private undoTentativeParses(unit: Unit): void {
    const undone = this.tentative.filter((t) => t.unit === unit);
    if (undone.length === 0) return;
    this.tentative = this.tentative.filter((t) => t.unit !== unit);
    for (const t of undone.reverse()) {
      if (t.rejected) continue;
      if (t.previous) this.prepared.set(t.name, t.previous);
      else this.prepared.delete(t.name);
    }
  }

  /** ReadyForQuery: closes the head unit; returns the statements that end with it. */
  ready(status: 'I' | 'T' | 'E'): StatementEnd[] {
    this.status = status;
    // PostgreSQL drops every portal when a transaction ends.
    if (status === 'I') this.portals.clear();
    const unit = this.units.shift();
    if (!unit) return [];
    this.answered++;
    const ends: StatementEnd[] = [];
    for (const r of unit.statements) {
      if (r.done) continue;
      ends.push(this.finish(r, unit.kind === 'extended' && !r.error));
    }
    return ends;
  }

  private openExtended(): Unit {
    this.copying = false;
    const last = this.units[this.units.length - 1];
    if (last && last.kind === 'extended' && !last.closed) return last;
    const unit: Unit = { kind: 'extended', statements: [], closed: false };
    this.units.push(unit);
    this.queuedUnits++;
    return unit;
  }

  private running(start: StatementStart, maxRows: number): Running {
    return { start, t0: this.now(), maxRows, tags: [], rows: null, done: false };
  }

  private finish(r: Running, skipped = false, suspended = false): StatementEnd {
    r.done = true;
    const end: StatementEnd = {
      id: r.start.id,
      tags: r.tags,
      rows: r.rows,
      durationMs: Math.round((this.now() - r.t0) * 1000) / 1000,
      ...(r.error ? { error: r.error } : {}),
      ...(skipped ? { skipped: true } : {}),
      ...(suspended ? { suspended: true } : {}),
    };
    return end;
  }
}

/** The row count a command tag carries: `SELECT 5`, `INSERT 0 5`, `UPDATE 3`, `COPY 10`. */
export function rowsOf(tag: string): number | null {
  const sp = tag.lastIndexOf(' ');
  if (sp < 0) return null;
  const n = Number(tag.slice(sp + 1));
  return Number.isInteger(n) && n >= 0 ? n : null;
}

/**
 * Length-prefixed, so no two different parameter lists digest alike. Formats
 * and declared types count too: the same bytes are another value in binary
 * than in text, and as float4 than as int4.
 */
function digestParams(types: readonly number[], formats: readonly number[], params: readonly (Buffer | null)[]): string {
  const h = createHash('sha256');
  h.update(JSON.stringify([types, formats]));
  for (const v of params) {
    if (v === null) h.update('N');
    else h.update(`V${v.length}:`).update(v);
  }
  return h.digest('hex');
}
