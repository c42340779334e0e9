import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import type { GrantName, PolicyConfig } from '../../config/schema.js';
import { StoreError } from '../../errors.js';
import type { AuditEventInput } from '../../events/types.js';
import { judgeStatements, judgeUnparseable, type Verdict } from '../../guard/index.js';
import { principalRef, type Principal } from '../../identity/principal.js';
import { classifyCached, type StatementFacts } from '../../sql/index.js';
import type { Session, TerminationReason } from '../../sessions/session.js';
import type { BackendConnection } from './backend/connect.js';
import { BackendScanner } from './backend-scanner.js';
import { parseCommandComplete, parseErrorFields, parseParameterStatus, parseReadyForQuery } from './codec/backend-parser.js';
import { errorResponse, noticeResponse, readyForQuery } from './codec/backend-serializer.js';
import { ProtocolError } from './codec/errors.js';
import type { Frame, FrameReader } from './codec/frame-reader.js';
import { FrameWriter, cstringBytes } from './codec/frame-writer.js';
import { parseBind, parseDescribeOrClose, parseExecute, parseParse, parseQuery } from './codec/frontend-parser.js';
import { query as queryMessage, terminate as terminateMessage } from './codec/frontend-serializer.js';
import { BE, FE } from './codec/message-types.js';
import type { PostgresAdapterContext } from './context.js';
import { redactCredentials } from '../../masking/statement-text.js';
import { StreamSplicer, type Splice } from './splicer.js';
import { StatementTracker, type StatementEnd, type StatementStart } from './statement-tracker.js';
import { MASKED_MESSAGE_TYPES, VALUE_MESSAGE_TYPES, type SessionMasker } from './masking/session-masker.js';
import type { StatementOutput } from './masking/result-layouts.js';
import { holdFor, holdsPossible, type Hold } from '../../approvals/rules.js';
import { BackendExchange, type ExchangeResult } from './backend-exchange.js';
import { countedTag, countInSavepoint, type CountOutcome } from './row-count.js';
import { failFastRefusal, heldOutcome, holdNotice, type HeldOutcome } from './held-statement.js';

export interface SessionInit {
  readonly id: string;
  readonly principal: Principal;
  readonly resource: string;
  readonly grant: GrantName;
  readonly policy: string;
  readonly endsAt?: Date;
  readonly clientAddress: string;
  readonly tls: boolean;
  readonly applicationName?: string;
  readonly client: Socket;
  /** The startup reader, holding any bytes the client pipelined after its password. */
  readonly clientReader: FrameReader;
  readonly backend: BackendConnection;
  readonly redactTypeOids: ReadonlySet<number>;
  /** Present when a masking policy covers this principal on this resource. */
  readonly masker?: SessionMasker;
  /** Largest backend message a masked session holds whole (a DataRow, a CopyData); larger ones end the session. */
  readonly maxMaskedMessageBytes?: number;
}

const PAUSE_AUDIT = 1;
const PAUSE_BACKPRESSURE = 2;
const PAUSE_HOLD = 4;
/** Largest response of a row-counted statement Sluice keeps to pass on after counting (a DELETE ... RETURNING under the threshold). */
const MAX_COUNTED_RESPONSE_BYTES = 16 * 1024 * 1024;
const WANTED_FROM_BACKEND = new Set<number>([BE.CommandComplete, BE.ErrorResponse, BE.ReadyForQuery, BE.EmptyQueryResponse, BE.PortalSuspended, BE.CopyInResponse, BE.ParameterStatus, BE.ParseComplete]);
const WANTED_WHEN_MASKED = new Set<number>([...WANTED_FROM_BACKEND, ...MASKED_MESSAGE_TYPES]);
const isErrorResponse = (type: number): boolean => type === BE.ErrorResponse;
const carriesValues = (type: number): boolean => VALUE_MESSAGE_TYPES.has(type);
/** Command tags after which the catalog masking reads may have changed. */
const DDL_TAG = /^(CREATE|ALTER|DROP|COMMENT|GRANT|REVOKE|SECURITY LABEL|IMPORT FOREIGN SCHEMA|REFRESH MATERIALIZED VIEW)\b/;

/** A statement an approval rule holds: sent by the client, recorded as started, not yet forwarded. */
interface Held {
  readonly raw: Buffer;
  readonly kind: 'query' | 'execute';
  /** Execute only: the portal it runs. */
  readonly portal?: string;
  readonly text: string;
  readonly params?: readonly (string | null)[];
  readonly paramsDigest?: string;
  readonly statements: readonly StatementFacts[];
  readonly hold: Hold;
  /** Ordinal of the tracker unit it belongs to. */
  readonly unit: number;
}

/** judge() found names the catalog does not know: the frame waits for a reload and is judged again. */
class CatalogReloadNeeded extends Error {}

/** An SQL-level PREPARE or DEALLOCATE waiting for the backend's CommandComplete before Sluice believes it. */
interface PreparedChange {
  readonly tag: 'PREPARE' | 'DEALLOCATE';
  /** undefined: DEALLOCATE ALL. */
  readonly name?: string;
  readonly body?: StatementFacts;
  /** Ordinal of the tracker unit it was sent in. */
  unit: number;
}

/** A denial waiting for the backend's error on its replacement statement. */
interface Denial {
  readonly reason: string;
  /** Ordinal of the tracker unit it was sent in. */
  readonly unit: number;
  /** 42501, or 57014 when a held statement's request ran out of time. */
  readonly sqlstate: string;
}

type Judged = Verdict & { changes?: PreparedChange[]; outputs?: StatementOutput[]; hold?: Hold; statements?: readonly StatementFacts[] };

/** A Parse with no parameter types: what the backend gets instead of a denied Parse. */
function parseMessage(name: string, text: string): Buffer {
  return new FrameWriter(FE.Parse, cstringBytes(name) + cstringBytes(text) + 2).cstring(name).cstring(text).byte(0).byte(0).done();
}

/**
 * One authenticated PostgreSQL session: relays frames between client and
 * backend, and turns them into statement events. A statement is forwarded
 * only after its `statement.started` event is durable; backend responses are
 * forwarded unchanged and scanned in place.
 */
export class PostgresSession implements Session {
  readonly protocol = 'postgres' as const;
  readonly id: string;
  readonly principal: Principal;
  readonly resource: string;
  readonly grant: GrantName;
  readonly policy: string;
  readonly openedAt = new Date();
  private end?: Date;
  readonly clientAddress: string;
  readonly tls: boolean;
  readonly applicationName?: string;
  bytesFromClient = 0;
  bytesToClient = 0;
  statements = 0;

  private readonly client: Socket;
  private readonly backend: Socket;
  private readonly reader: FrameReader;
  private readonly tracker: StatementTracker;
  private readonly scanner: BackendScanner;
  private pauses = 0;
  private auditing = false;
  private closed = false;
  private closeReason = 'client_closed';
  private endTimer?: NodeJS.Timeout;
  private completed: AuditEventInput[] = [];
  private encodingChangedTo?: string;
  /**
   * Denied statements reach the backend as a call of a function that cannot
   * exist (decision 0004), so the backend fails where the statement stood and
   * applies its own transaction rules. It is qualified with pg_catalog, where
   * only a superuser can create functions, so nobody can define it and turn a
   * denial into a call; each denial gets its own random suffix.
   */
  private readonly poisonPrefix = `sluice_denied_${randomBytes(8).toString('hex')}_`;
  /** Denials sent to the backend and not yet answered, by poison function name, with the ordinal of their unit. */
  private readonly denials = new Map<string, Denial>();
  /** Bodies of SQL-level PREPAREs the backend confirmed, by name, so that EXECUTE is judged by what it runs. */
  private readonly sqlPrepared = new Map<string, StatementFacts>();
  /** Allowed PREPARE/DEALLOCATE statements sent and not yet confirmed by their CommandComplete, in order. */
  private preparedChanges: PreparedChange[] = [];
  /** Backend messages of the chunk being scanned that are replaced on their way to the client. */
  private splices: Splice[] | null = null;
  /** Replaces messages on their way to the client and holds back the start of one that may still be replaced. */
  private readonly splicer = new StreamSplicer();
  private readonly masker?: SessionMasker;
  /** A frame taken from the reader but not yet handled: it waits for the masking catalog. */
  private stashed: Frame | null = null;
  /** A value-carrying message over the limit, seen in the chunk being scanned. */
  private oversize?: { length: number; start: number };
  private loadingCatalog = false;
  /** Messages masking replaced in the chunk being scanned, for the metric. */
  private maskedSinceCount = 0;
  /** Names unknown to the catalog already triggered one reload; judge with what it has. */
  private reloadedFor?: string;
  /** A statement waiting for an approval decision (or for its row count); the client is paused meanwhile. */
  private held?: Held;
  private holdAbort?: AbortController;
  /** The wait-mode request of the held statement, cancelled if the client goes away. */
  private holdRequest?: string;
  /** Backend bytes go here while Sluice runs its own queries (the savepoint around a row count). */
  private exchange?: BackendExchange;
  /** Resolves when every unit before the held one is answered. */
  private onIdle?: () => void;
  /** Notices waiting for a message boundary in the backend stream. */
  private notices: Buffer[] = [];
  private holdRules?: { readonly policies: readonly PolicyConfig[]; readonly possible: boolean };
  /** Portals whose held Execute was released: executing them again (after PortalSuspended) continues that statement. */
  private readonly releasedPortals = new Set<string>();
  /** The client sent a CancelRequest while its statement waited for a decision. */
  private holdCancelled = false;
  /** From SET sluice.justification: shown to approvers. */
  private justification?: string;
  private readonly maxMessageBytes: number;
  private readonly counters: { statements: { inc(n?: number): void }; errors: { inc(): void }; toClient: { inc(n: number): void }; fromClient: { inc(n: number): void } };

  constructor(
    private readonly ctx: PostgresAdapterContext,
    init: SessionInit,
    private readonly onClosed: (s: PostgresSession) => void,
  ) {
    this.id = init.id;
    this.principal = init.principal;
    this.resource = init.resource;
    this.grant = init.grant;
    this.policy = init.policy;
    this.clientAddress = init.clientAddress;
    this.tls = init.tls;
    this.applicationName = init.applicationName;
    this.client = init.client;
    this.backend = init.backend.socket;
    this.reader = init.clientReader;
    this.tracker = new StatementTracker({ redactTypeOids: init.redactTypeOids, maxParamChars: 1024 });
    this.masker = init.masker;
    this.maxMessageBytes = init.maxMaskedMessageBytes ?? 64 * 1024 * 1024;
    this.scanner = this.masker
      ? new BackendScanner((t) => WANTED_WHEN_MASKED.has(t), this.onBackendMessage, init.maxMaskedMessageBytes ?? 64 * 1024 * 1024, this.onOversize)
      : new BackendScanner((t) => WANTED_FROM_BACKEND.has(t), this.onBackendMessage);
    const m = ctx.metrics;
    this.counters = {
      statements: m.statements.labels('postgres', this.resource),
      errors: m.statementErrors.labels('postgres', this.resource),
      toClient: m.bytes.labels('postgres', 'to_client'),
      fromClient: m.bytes.labels('postgres', 'from_client'),
    };
    const pending = init.backend.pending;
    this.client.on('data', this.onClientData);
    this.client.on('close', () => this.close('client_closed'));
    this.client.on('error', () => this.close('client_error'));
    this.client.on('drain', () => this.backend.resume());
    this.backend.on('data', this.onBackendData);
    this.backend.on('close', () => this.close('backend_closed'));
    this.backend.on('error', () => this.close('backend_error'));
    this.backend.on('drain', () => this.resumeClient(PAUSE_BACKPRESSURE));
    if (init.endsAt) this.limitEnd(init.endsAt);
    // Deferred so that the listener has registered the session before anything can close it.
    setImmediate(() => {
      if (this.closed) return;
      this.backend.resume();
      this.client.resume();
      if (pending.length) this.onBackendData(pending);
      if (this.reader.buffered > 0) this.processClient();
    });
  }

  get endsAt(): Date | undefined {
    return this.end;
  }

  limitEnd(
    endsAt: Date,
    reason: TerminationReason = { code: 'session_duration_exceeded', sqlstate: '57P01', message: 'the session reached its max_session_duration; reconnect with a fresh token' },
  ): void {
    if (this.closed || (this.end && this.end <= endsAt)) return;
    this.end = endsAt;
    clearTimeout(this.endTimer);
    this.armEndTimer(endsAt, reason);
  }

  /** Timers cannot wait longer than about 24.8 days: a longer limit re-arms until it is reached. */
  private armEndTimer(endsAt: Date, reason: TerminationReason): void {
    const ms = Math.max(0, Math.min(endsAt.getTime() - Date.now(), 2 ** 31 - 1));
    this.endTimer = setTimeout(() => {
      if (Date.now() < endsAt.getTime()) this.armEndTimer(endsAt, reason);
      else this.terminate(reason);
    }, ms);
    this.endTimer.unref();
  }

  terminate(reason: TerminationReason): void {
    if (this.closed) return;
    this.closeReason = reason.code;
    this.backend.removeListener('data', this.onBackendData);
    // Held bytes start at a message boundary: what the client has seen ends at one.
    if ((this.scanner.atBoundary() || this.splicer.holding) && !this.client.destroyed) {
      this.client.write(errorResponse({ severity: 'FATAL', code: reason.sqlstate, message: reason.message }));
    }
    void this.ctx.events
      .record([this.event('session.terminated', { reason: reason.code, message: reason.message, ...(reason.by ? { by: reason.by } : {}) })], { defer: true })
      .catch((err) => this.auditFailed(err));
    this.close(reason.code);
  }

  private readonly onClientData = (chunk: Buffer): void => {
    this.bytesFromClient += chunk.length;
    this.counters.fromClient.inc(chunk.length);
    try {
      this.reader.push(chunk);
    } catch (err) {
      this.protocolViolation(err);
      return;
    }
    if (this.held) {
      if (this.reader.buffered > this.maxMessageBytes) this.pauseClient(PAUSE_HOLD);
      return;
    }
    if (!this.auditing && !this.loadingCatalog) this.processClient();
  };

  /** Masked sessions judge with the resource's catalog: load it first when it is missing or stale. */
  private loadCatalogThen(): void {
    this.loadingCatalog = true;
    this.pauseClient(PAUSE_AUDIT);
    this.masker!.loadCatalog().then(
      () => {
        this.loadingCatalog = false;
        if (this.closed) return;
        this.resumeClient(PAUSE_AUDIT);
        this.processClient();
      },
      (err: unknown) => {
        this.loadingCatalog = false;
        this.ctx.log.error({ session: this.id, resource: this.resource, err: String(err) }, 'masking catalog could not be read');
        this.terminate({
          code: 'masking_catalog_unavailable',
          sqlstate: '58000',
          message: `Sluice masks data on resource "${this.resource}" and could not read its catalog, so nothing was run; reconnect later or tell the Sluice operator`,
        });
      },
    );
  }

  private processClient(): void {
    if (this.masker && (this.reader.buffered > 0 || this.stashed) && !this.masker.useFreshCatalog()) {
      this.loadCatalogThen();
      return;
    }
    const out: Buffer[] = [];
    const events: AuditEventInput[] = [];
    const denials: [string, Denial][] = [];
    let started = 0;
    let queries = 0;
    try {
      for (let frame = this.nextFrame(); frame; frame = this.nextFrame()) {
        let raw = frame.raw;
        switch (frame.type) {
          case FE.Query: {
            const text = parseQuery(frame.payload);
            const verdict = this.judgeOrStash(text, frame);
            if (verdict === undefined) break;
            this.masker?.layouts.query(verdict.outputs ?? []);
            const s = this.tracker.query(text, verdict.rule);
            this.queueChanges(verdict);
            events.push(this.startedEvent(s));
            if (verdict.action === 'deny') {
              const poison = this.poison(verdict.reason, denials);
              raw = queryMessage(`SELECT pg_catalog."${poison}"()`);
              events.push(this.deniedEvent(verdict, { statement: s.id, protocol: 'simple', text }));
            } else if (verdict.hold) {
              this.held = { raw, kind: 'query', text, statements: verdict.statements ?? [], hold: verdict.hold, unit: this.tracker.currentUnit };
            }
            started++;
            queries++;
            break;
          }
          case FE.Parse: {
            const p = parseParse(frame.payload);
            const verdict = this.judgeOrStash(p.query, frame);
            if (verdict === undefined) break;
            // One statement per Parse: its output decision goes with the prepared statement.
            this.masker?.layouts.parse(p.name, verdict.outputs?.[0] ?? { maskAll: verdict.action !== 'allow' });
            this.tracker.parse(p.name, p.query, p.paramTypes, verdict.rule);
            this.queueChanges(verdict);
            if (verdict.action === 'deny') {
              // The backend fails this Parse and skips to Sync itself, so Bind and Execute fail as after any failed Parse.
              const poison = this.poison(verdict.reason, denials);
              raw = parseMessage(p.name, `SELECT pg_catalog."${poison}"()`);
              events.push(this.deniedEvent(verdict, { protocol: 'extended', text: p.query, ...(p.name ? { statementName: p.name } : {}) }));
            }
            break;
          }
          case FE.Bind: {
            const b = parseBind(frame.payload);
            this.masker?.layouts.bind(b.portal, b.statement, b.resultFormats);
            this.releasedPortals.delete(b.portal);
            this.tracker.bind(b.portal, b.statement, b.paramFormats, b.params);
            break;
          }
          case FE.Execute: {
            const e = parseExecute(frame.payload);
            this.masker?.layouts.execute(e.portal);
            const s = this.tracker.execute(e.portal, e.maxRows);
            events.push(this.startedEvent(s));
            started++;
            const unit = this.tracker.currentUnit;
            // After a denial in the same unit the backend skips to Sync: nothing would run, so nothing is held.
            const skipping = () => denials.some(([, d]) => d.unit === unit) || [...this.denials.values()].some((d) => d.unit === unit);
            // A portal that already ran part of its rows (maxRows) is the same statement continuing, not a new one.
            const continuing = this.releasedPortals.has(e.portal);
            const hold = continuing || !this.holdsPossible() || skipping() ? undefined : this.holdForExecute(s);
            if (hold) {
              this.held = {
                raw,
                kind: 'execute',
                portal: e.portal,
                text: hold.text,
                ...(s.params ? { params: s.params, paramsDigest: this.tracker.paramsDigest(e.portal) } : {}),
                statements: hold.statements,
                hold: hold.hold,
                unit,
              };
            }
            break;
          }
          case FE.Describe: {
            const d = parseDescribeOrClose(frame.payload);
            this.masker?.layouts.describe(d.target, d.name);
            this.tracker.other('describe');
            break;
          }
          case FE.Close: {
            const c = parseDescribeOrClose(frame.payload);
            this.masker?.layouts.close(c.target, c.name);
            if (c.target === 'P') this.releasedPortals.delete(c.name);
            this.tracker.other({ close: c.target, name: c.name });
            break;
          }
          case FE.Flush:
            this.tracker.other('flush');
            break;
          case FE.Sync:
            this.masker?.layouts.sync();
            this.tracker.sync();
            break;
          case FE.Terminate:
            this.closeReason = 'client_terminated';
            break;
          case FE.CopyData:
            break;
          case FE.CopyDone:
          case FE.CopyFail:
            this.masker?.layouts.copyEnd();
            this.tracker.copyEnd();
            break;
          case FE.FunctionCall:
            this.terminate({
              code: 'function_call_refused',
              sqlstate: '0A000',
              message: 'the function-call sub-protocol (fastpath, used by large-object calls) cannot be audited and is not supported through Sluice',
            });
            return;
          default:
            throw new ProtocolError('frame_unexpected', `unexpected message type ${JSON.stringify(String.fromCharCode(frame.type))} from the client`);
        }
        if (this.stashed || this.held) break;
        out.push(raw);
      }
    } catch (err) {
      this.protocolViolation(err);
      return;
    }
    if (events.length === 0) {
      this.forward(out);
      if (this.stashed) this.processClient();
      return;
    }
    this.statements += started;
    this.auditing = true;
    this.pauseClient(PAUSE_AUDIT);
    this.ctx.events.record(events).then(
      () => {
        this.auditing = false;
        if (this.closed) return;
        this.counters.statements.inc(started);
        for (const [poison, reason] of denials) this.denials.set(poison, reason);
        this.forward(out);
        this.resumeClient(PAUSE_AUDIT);
        if (this.held) {
          this.startHold(this.held);
          return;
        }
        if (this.reader.buffered > 0 || this.stashed) this.processClient();
      },
      (err: unknown) => {
        this.auditing = false;
        this.auditFailed(err);
        if (this.closed) return;
        const alone = queries === 1 && out.length + (this.held ? 1 : 0) === 1 && this.tracker.pending === 1 && this.tracker.status === 'I' && this.scanner.atBoundary();
        const message = 'the audit log could not record this statement, so it was not run; try again later and tell the Sluice operator';
        if (!alone) {
          this.terminate({ code: 'audit_unavailable', sqlstate: '58000', message });
          return;
        }
        this.held = undefined;
        this.tracker.withdrawLastQuery();
        this.masker?.layouts.withdrawLastQuery();
        this.statements -= 1;
        this.client.write(Buffer.concat([errorResponse({ severity: 'ERROR', code: '58000', message }), readyForQuery('I')]));
        this.resumeClient(PAUSE_AUDIT);
        if (this.reader.buffered > 0) this.processClient();
      },
    );
  }

  /**
   * The guard's verdict on one message's text. Every statement of it is
   * judged before any is sent; an EXECUTE is judged with the body its
   * PREPARE had.
   */
  private judge(text: string): Judged {
    const c = classifyCached(text);
    if (!c.ok) return judgeUnparseable(c.message);
    // An EXECUTE sees the newest body its name was given: earlier in this message, then sent but unconfirmed, then confirmed.
    const changes: PreparedChange[] = [];
    const statements = c.statements.map((f) => {
      if (f.kind === 'prepare' && f.preparedName !== undefined && f.body) changes.push({ tag: 'PREPARE', name: f.preparedName, body: f.body, unit: 0 });
      else if (f.kind === 'deallocate') changes.push({ tag: 'DEALLOCATE', name: f.preparedName, unit: 0 });
      return this.withPreparedBody(f, changes);
    });
    const policies = this.ctx.state().config.policies;
    const judged = judgeStatements({ principal: this.principal, resource: this.resource, grant: this.grant, statements, policies });
    if (judged.action === 'deny') return judged;
    this.noteJustification(statements);
    // Held only once the guard allowed it: an approval never releases more than the grant allows.
    const hold = this.holdsPossible() ? holdFor(policies, this.principal, this.resource, statements) : undefined;
    const verdict: Judged = { ...judged, ...(changes.length > 0 ? { changes } : {}), ...(hold ? { hold, statements } : {}) };
    if (!this.masker) return verdict;
    if (this.masker.unknownRelations(statements) && this.reloadedFor !== text) {
      this.reloadedFor = text;
      this.masker.catalogChanged();
      throw new CatalogReloadNeeded();
    }
    const masking = this.masker.judge(statements);
    if (masking.verdict.action === 'deny') return masking.verdict;
    return { ...verdict, outputs: masking.outputs };
  }

  /** Whether approval rules apply to this session at all, worked out once per configuration version. */
  private holdsPossible(): boolean {
    const policies = this.ctx.state().config.policies;
    if (this.holdRules?.policies !== policies) this.holdRules = { policies, possible: holdsPossible(policies, this.principal, this.resource) };
    return this.holdRules.possible;
  }

  /** The body an SQL-level PREPARE gave this name: earlier in the same message, then sent but unconfirmed, then confirmed. */
  private preparedBody(name: string, changes: readonly PreparedChange[] = []): StatementFacts | undefined {
    for (const list of [changes, this.preparedChanges]) {
      for (let i = list.length - 1; i >= 0; i--) {
        const ch = list[i]!;
        if (ch.name === undefined) return undefined;
        if (ch.name === name) return ch.body;
      }
    }
    return this.sqlPrepared.get(name);
  }

  /** An EXECUTE is judged by the body it runs. */
  private withPreparedBody(f: StatementFacts, changes: readonly PreparedChange[] = []): StatementFacts {
    if (f.kind !== 'execute' || f.preparedName === undefined) return f;
    const body = this.preparedBody(f.preparedName, changes);
    return body ? { ...f, opaque: false, body } : f;
  }

  /**
   * The approval rule that holds an extended-protocol statement, judged at
   * Execute, when its parameters are known. A Bind may name a statement an
   * SQL-level PREPARE created (the tracker saw no Parse for it): that body is
   * what runs.
   */
  private holdForExecute(s: StatementStart): { hold: Hold; statements: StatementFacts[]; text: string } | undefined {
    let statements: StatementFacts[];
    let text = s.text;
    if (s.text === '' && s.statementName !== undefined) {
      const body = this.sqlPrepared.get(s.statementName);
      if (!body) return undefined;
      statements = [body];
      text = body.text;
    } else {
      const c = classifyCached(s.text);
      if (!c.ok) return undefined;
      statements = c.statements.map((f) => this.withPreparedBody(f));
    }
    const hold = holdFor(this.ctx.state().config.policies, this.principal, this.resource, statements);
    return hold ? { hold, statements, text } : undefined;
  }

  /** SET sluice.justification = '...' tells approvers why; the backend keeps it as a custom setting. */
  private noteJustification(statements: readonly StatementFacts[]): void {
    for (const f of statements) {
      if (f.setting?.name.toLowerCase() === 'sluice.justification') this.justification = f.kind === 'reset' ? undefined : f.setting.value;
    }
  }

  /** The frame to handle next: one that waited for the catalog, then the reader's. */
  private nextFrame(): Frame | undefined {
    if (this.stashed) {
      const f = this.stashed;
      this.stashed = null;
      return f;
    }
    return this.reader.next() ?? undefined;
  }

  /** judge(), or undefined when the frame must wait for a catalog reload (it is stashed and handled again after). */
  private judgeOrStash(text: string, frame: Frame): Judged | undefined {
    try {
      return this.judge(text);
    } catch (err) {
      if (!(err instanceof CatalogReloadNeeded)) throw err;
      this.stashed = frame;
      return undefined;
    }
  }

  /** Remembers the PREPARE/DEALLOCATE of an allowed message, in the unit the tracker just put it in. */
  private queueChanges(verdict: Judged): void {
    if (!verdict.changes) return;
    for (const ch of verdict.changes) {
      ch.unit = this.tracker.currentUnit;
      this.preparedChanges.push(ch);
    }
  }

  /** CommandComplete of PREPARE, DEALLOCATE or DISCARD ALL: the backend's prepared statements changed. */
  private preparedChanged(tag: string): void {
    if (tag === 'DISCARD ALL') {
      this.sqlPrepared.clear();
      return;
    }
    const kind = tag === 'PREPARE' ? 'PREPARE' : tag.startsWith('DEALLOCATE') ? 'DEALLOCATE' : undefined;
    if (!kind || this.preparedChanges[0]?.tag !== kind) return;
    const ch = this.preparedChanges.shift()!;
    if (ch.tag === 'PREPARE') this.sqlPrepared.set(ch.name!, ch.body!);
    else if (ch.name === undefined) this.sqlPrepared.clear();
    else this.sqlPrepared.delete(ch.name);
  }

  /** A new poison function name for a denial, queued with its reason until the message carrying it is sent. */
  private poison(reason: string, queue: [string, Denial][], unit = this.tracker.currentUnit, sqlstate = '42501'): string {
    const name = `${this.poisonPrefix}${randomBytes(6).toString('hex')}`;
    queue.push([name, { reason, unit, sqlstate }]);
    return name;
  }

  /**
   * A CancelRequest for this session. While a statement waits for a decision
   * the backend has nothing to cancel: the wait ends instead, the request is
   * withdrawn and the statement fails with 57014, as a cancelled query does.
   */
  cancelHeld(): boolean {
    if (this.holdRequest === undefined || !this.holdAbort) return false;
    this.holdCancelled = true;
    this.holdAbort.abort();
    return true;
  }

  /** Holds the statement: the client is paused until it runs, is refused, or ran under its row threshold. */
  private startHold(h: Held): void {
    // The client socket keeps being read (up to a bound, see onClientData), so a client that leaves is noticed and its request cancelled.
    this.holdAbort = new AbortController();
    this.runHold(h).then(
      (outcome) => this.finishHold(h, outcome),
      (err: unknown) => {
        this.ctx.log.error({ session: this.id, err: String(err) }, 'a held statement could not be processed');
        this.finishHold(h, { refuse: 'sluice: the approval request could not be recorded, so the statement did not run; try again later and tell the Sluice operator', sqlstate: '58000' });
      },
    );
  }

  private async runHold(h: Held): Promise<HeldOutcome> {
    const { rule, policy } = h.hold;
    const approvals = this.ctx.approvals;
    this.holdCancelled = false;
    // A simple Query waits until everything before it is answered, so its notice follows earlier results and the transaction status is known.
    // Earlier extended-protocol messages without their Sync would never be answered: then it is held as it stands.
    const idle = h.kind === 'query' && this.tracker.earlierUnitsClosed ? (await this.backendIdle(), !this.closed) : false;
    if (this.closed) return { gone: true };
    if (idle && this.tracker.status === 'E' && h.statements.length === 1) {
      // In a failed transaction it cannot run: the backend answers 25P02, and nobody needs to be asked (nor an approval used up).
      return { run: true };
    }
    // Bound to what runs: an EXECUTE's prepared body counts as much as its text, since the name can be prepared anew.
    const bodies = h.statements.flatMap((f) => (f.kind === 'execute' && f.body ? [f.body.text] : []));
    const exact = { text: [h.text, ...bodies].join('\u0000'), ...(h.paramsDigest ? { paramsDigest: h.paramsDigest } : {}) };
    if (rule.mode === 'fail_fast' && (await approvals.useApproved(this.principal, this.resource, exact, this.id))) return { run: true };
    let rows: number | undefined;
    const tag = idle && rule.rows_over !== undefined ? countedTag(h.statements) : undefined;
    if (tag !== undefined) {
      const counted = await this.countRows(h, rule.rows_over!, tag);
      if (!('held' in counted)) return counted;
      rows = counted.rows;
    }
    // Approvers see what runs: an EXECUTE together with the body it executes.
    const shown = h.statements.flatMap((f) => (f.kind === 'execute' && f.body ? [f, f.body] : [f]));
    const request = {
      principal: this.principal,
      resource: this.resource,
      hold: h.hold,
      sessionId: this.id,
      grant: this.grant,
      text: this.recordedText(h.text),
      exact,
      ...(h.params ? { params: h.params.map((p) => this.recordedParam(p)) } : {}),
      facts: {
        kinds: [...new Set(shown.map((f) => f.kind))],
        tables: [...new Set(shown.flatMap((f) => [...f.tablesWritten, ...f.tablesRead]))],
        functions: [...new Set(shown.flatMap((f) => f.functions))],
        opaque: shown.some((f) => f.opaque && !(f.kind === 'execute' && f.body)),
      },
      ...(rows !== undefined ? { rows } : {}),
      justification: this.justification ?? this.applicationName,
    };
    if (rule.mode === 'fail_fast') {
      const status = approvals.pendingFor(this.principal, this.resource, exact) ?? (await approvals.requestStatement(request));
      return { refuse: failFastRefusal(status, h.hold), sqlstate: '42501' };
    }
    const status = await approvals.requestStatement(request);
    if (this.closed) {
      await approvals.cancel(status.request.id, 'the waiting session ended');
      return { gone: true };
    }
    this.holdRequest = status.request.id;
    this.notice(holdNotice(status, h.hold));
    const waiting = this.ctx.metrics.heldStatements.labels(this.resource);
    waiting.inc();
    const final = await approvals.waitFor(status.request.id, this.holdAbort!.signal).finally(() => waiting.dec());
    this.holdRequest = undefined;
    if (this.closed) return { gone: true };
    if (this.holdCancelled) {
      // The client's cancel wins even over an approval that arrived at the same moment: that approval is left unused.
      await approvals.cancel(final.request.id, 'the client cancelled the statement');
      return { refuse: `sluice: canceling statement due to user request; approval request ${final.request.id} was withdrawn`, sqlstate: '57014' };
    }
    this.ctx.log.info({ session: this.id, id: status.request.id, policy, state: final.state }, 'held statement decided');
    if (final.state === 'expired') await approvals.expire(final.request.id);
    const outcome = heldOutcome(final);
    if ('run' in outcome && !(await approvals.use(final.request.id, this.id))) {
      return { refuse: `sluice: the approval of request ${final.request.id} could not be used, so the statement did not run`, sqlstate: '42501' };
    }
    return outcome;
  }

  private finishHold(h: Held, outcome: HeldOutcome): void {
    this.held = undefined;
    this.holdAbort = undefined;
    if (this.closed) return;
    if ('run' in outcome) {
      if (h.portal !== undefined) this.releasedPortals.add(h.portal);
      this.forward([h.raw]);
    }
    else if ('refuse' in outcome) {
      // The backend fails where the statement stood (decision 0004): a transaction block is aborted as after any error.
      const queue: [string, Denial][] = [];
      const poison = this.poison(outcome.refuse, queue, h.unit, outcome.sqlstate);
      this.denials.set(...queue[0]!);
      const sql = `SELECT pg_catalog."${poison}"()`;
      this.forward([h.kind === 'query' ? queryMessage(sql) : parseMessage(`${this.poisonPrefix}stmt`, sql)]);
    }
    this.resumeClient(PAUSE_HOLD);
    if (this.reader.buffered > 0 || this.stashed) this.processClient();
  }

  /** Resolves once every unit before the held one is answered and nothing is half sent to the client. */
  private backendIdle(): Promise<void> {
    if (this.tracker.pending === 1 && this.scanner.atBoundary() && !this.splicer.holding) return Promise.resolve();
    return new Promise((resolve) => (this.onIdle = resolve));
  }

  /**
   * Counts the rows the held statement changes (row-count.ts) with backend
   * bytes diverted to a BackendExchange, so nothing of Sluice's own queries
   * reaches the client. What ran is fed through the normal path (tracker,
   * masking, splicer); notifications that arrived meanwhile follow it.
   */
  private async countRows(h: Held, threshold: number, tag: string): Promise<CountOutcome | { gone: true }> {
    const x = new BackendExchange(this.maxMessageBytes);
    this.exchange = x;
    this.backend.resume();
    const send = (message: Buffer, keep = 0): Promise<ExchangeResult> => {
      const answer = x.expect(keep);
      this.backend.write(message);
      return answer;
    };
    let outcome: CountOutcome;
    try {
      outcome = await countInSavepoint(send, {
        statement: h.raw,
        began: this.tracker.status === 'I',
        savepoint: `${this.poisonPrefix}rows`,
        threshold,
        tag,
        keepBytes: MAX_COUNTED_RESPONSE_BYTES,
      });
    } catch (err) {
      this.exchange = undefined;
      if (!this.closed) {
        // The backend's transaction state is no longer known: end the session, so that it rolls back.
        this.ctx.log.error({ session: this.id, err: String(err) }, 'row count check failed');
        this.terminate({ code: 'row_count_failed', sqlstate: '58000', message: 'Sluice could not count the rows of a held statement, so the session was ended and its transaction rolled back; tell the Sluice operator' });
      }
      return { gone: true };
    }
    this.exchange = undefined;
    const rest = x.finish();
    if ('ran' in outcome) this.onBackendData(outcome.ran);
    if (rest.length > 0 && !this.closed) this.onBackendData(rest);
    return outcome;
  }

  /** A NoticeResponse for the client, written at the next message boundary of the backend stream. */
  private notice(message: string): void {
    this.notices.push(noticeResponse({ severity: 'NOTICE', code: '00000', message }));
    this.flushNotices();
  }

  private flushNotices(): void {
    if (this.closed || !this.scanner.atBoundary() || this.splicer.holding) return;
    const all = this.notices;
    this.notices = [];
    this.client.write(all.length === 1 ? all[0]! : Buffer.concat(all));
  }

  private forward(out: Buffer[]): void {
    if (out.length === 0 || this.closed) return;
    if (out.length === 1) this.backend.write(out[0]);
    else {
      this.backend.cork();
      for (const b of out) this.backend.write(b);
      this.backend.uncork();
    }
    if (this.backend.writableNeedDrain) this.pauseClient(PAUSE_BACKPRESSURE);
  }

  private readonly onBackendData = (chunk: Buffer): void => {
    if (this.exchange) {
      this.exchange.push(chunk);
      return;
    }
    this.bytesToClient += chunk.length;
    this.counters.toClient.inc(chunk.length);
    const base = this.scanner.position;
    try {
      this.scanner.scan(chunk);
    } catch (err) {
      this.ctx.log.error({ session: this.id, err: String(err) }, 'backend sent a malformed message');
      this.close('backend_protocol_error');
      return;
    }
    if (this.maskedSinceCount > 0) {
      // Counted per chunk, not per row: a masked result rewrites hundreds of rows in each.
      this.ctx.metrics.maskedMessages.labels(this.resource).inc(this.maskedSinceCount);
      this.maskedSinceCount = 0;
    }
    if (this.completed.length) {
      const events = this.completed;
      this.completed = [];
      void this.ctx.events.record(events, { defer: true }).catch((err) => this.auditFailed(err));
    }
    if (this.closed) return;
    if (this.oversize !== undefined) {
      // Send what came before the oversized message, hold it back, then end: terminate() sees a message boundary.
      const before = (this.splices ?? []).filter((sp) => sp.end <= this.oversize!.start);
      this.writeParts(this.splicer.take(chunk, base, before, this.oversize.start));
      this.splices = null;
      this.terminate({
        code: 'masked_message_too_large',
        sqlstate: '54000',
        message: `a ${this.oversize.length}-byte result message is larger than Sluice can hold to mask (server.postgres.max_message_bytes); none of it was sent. Select fewer or smaller values`,
      });
      return;
    }
    const holdFrom = this.masker
      ? this.scanner.incompleteStart(carriesValues)
      : this.denials.size > 0
        ? this.scanner.incompleteStart(isErrorResponse)
        : undefined;
    const splices = this.splices;
    this.splices = null;
    const flowing =
      splices === null && !this.splicer.holding && holdFrom === undefined ? this.client.write(chunk) : this.writeParts(this.splicer.take(chunk, base, splices ?? [], holdFrom));
    if (!flowing) this.backend.pause();
    if (this.notices.length > 0) this.flushNotices();
    if (this.onIdle && this.tracker.pending === 1 && this.scanner.atBoundary() && !this.splicer.holding) {
      const idle = this.onIdle;
      this.onIdle = undefined;
      idle();
    }
    if (this.encodingChangedTo !== undefined) {
      this.terminate({
        code: 'client_encoding_changed',
        sqlstate: '0A000',
        message: `client_encoding was changed to ${this.encodingChangedTo}; Sluice inspects statements as UTF-8, so the session was ended. Keep client_encoding UTF8`,
      });
    }
  };

  /** Writes parts to the client; false when it wants the backend paused. */
  private writeParts(parts: Buffer[]): boolean {
    if (parts.length === 0) return !this.client.writableNeedDrain;
    // One write per chunk: a masked result splices hundreds of rows into each, and a write costs more than the copy.
    return this.client.write(parts.length === 1 ? parts[0]! : Buffer.concat(parts));
  }

  /**
   * A message too large to hold for masking: passing it on unread could
   * leak, so the session ends once the messages before it are sent.
   */
  private readonly onOversize = (type: number, length: number, start: number): void => {
    if (carriesValues(type) && this.oversize === undefined) this.oversize = { length, start };
  };

  private readonly onBackendMessage = (type: number, payload: Buffer, start: number, msgEnd: number): void => {
    if (this.masker && type !== BE.ErrorResponse) this.maskMessage(type, payload, start, msgEnd);
    if (type === BE.DataRow || type === BE.CopyData) return;
    let end: StatementEnd | undefined;
    switch (type) {
      case BE.CommandComplete: {
        const tag = parseCommandComplete(payload);
        if (DDL_TAG.test(tag)) this.ctx.catalogs.invalidate(this.resource);
        if (tag === 'PREPARE' || tag.startsWith('DEALLOCATE') || tag === 'DISCARD ALL') this.preparedChanged(tag);
        end = this.tracker.commandComplete(tag);
        break;
      }
      case BE.EmptyQueryResponse:
        end = this.tracker.endWithoutTag();
        break;
      case BE.PortalSuspended:
        end = this.tracker.portalSuspended();
        break;
      case BE.CopyInResponse:
        this.tracker.copyIn();
        return;
      case BE.ErrorResponse: {
        const f = parseErrorFields(payload);
        const denial = this.denialAnswered(f.M ?? '');
        if (denial !== undefined) {
          (this.splices ??= []).push({ start, end: msgEnd, replacement: errorResponse({ severity: 'ERROR', code: denial.sqlstate, message: denial.reason }) });
          end = this.tracker.error(denial.sqlstate, denial.reason);
          if (this.masker) this.maskMessage(type, payload, start, msgEnd);
        } else {
          // The audit keeps the error as the client sees it: with echoed values masked.
          const masked = this.masker ? this.maskMessage(type, payload, start, msgEnd) : undefined;
          end = this.tracker.error(f.C ?? 'XX000', (masked ? parseErrorFields(masked.subarray(5)).M : f.M) ?? '');
        }
        break;
      }
      case BE.ReadyForQuery: {
        const status = parseReadyForQuery(payload);
        // PostgreSQL drops every portal when a transaction ends.
        if (status === 'I') this.releasedPortals.clear();
        for (const e of this.tracker.ready(status)) this.completedEvent(e);
        this.forgetAnsweredUnits();
        return;
      }
      case BE.ParseComplete:
        this.tracker.parseComplete();
        return;
      case BE.ParameterStatus: {
        // A multi-byte client encoding such as SJIS would make the backend read statement bytes differently from the UTF-8 Sluice inspected.
        const [name, value] = parseParameterStatus(payload);
        if (name === 'client_encoding' && value.toUpperCase() !== 'UTF8') this.encodingChangedTo = value;
        return;
      }
    }
    if (end) this.completedEvent(end);
  };

  /** Masking's view of a backend message; a replacement is spliced in unless a denial's already is. */
  private maskMessage(type: number, payload: Buffer, start: number, msgEnd: number): Buffer | undefined {
    let replacement: Buffer | undefined;
    try {
      replacement = this.masker!.backendMessage(type, payload);
    } catch (err) {
      this.ctx.log.error({ session: this.id, err: String(err) }, 'a result could not be read for masking');
      this.terminate({
        code: 'masking_failed',
        sqlstate: 'XX000',
        message: 'Sluice could not read a result message to mask it, so the session was ended and the message withheld; tell the Sluice operator',
      });
      return undefined;
    }
    if (replacement === undefined) return undefined;
    const splices = (this.splices ??= []);
    if (type === BE.ErrorResponse && splices.some((sp) => sp.start === start)) return undefined;
    splices.push({ start, end: msgEnd, replacement });
    this.maskedSinceCount++;
    return replacement;
  }

  /**
   * A unit is over once its ReadyForQuery arrived: a replacement the backend
   * skipped (an earlier message failed first) and a PREPARE that never
   * completed will not be answered any more.
   */
  private forgetAnsweredUnits(): void {
    const done = this.tracker.answeredUnits;
    for (const [name, d] of this.denials) if (d.unit <= done) this.denials.delete(name);
    if (this.preparedChanges.length > 0 && this.preparedChanges[0].unit <= done) this.preparedChanges = this.preparedChanges.filter((ch) => ch.unit > done);
  }

  /** The denial whose replacement statement this backend error answers, if it does. */
  private denialAnswered(message: string): Denial | undefined {
    const at = message.indexOf(this.poisonPrefix);
    if (at < 0) return undefined;
    const name = /^[a-z0-9_]+/.exec(message.slice(at))?.[0] ?? '';
    const denial = this.denials.get(name);
    this.denials.delete(name);
    return denial;
  }

  private completedEvent(e: StatementEnd): void {
    if (e.error) this.counters.errors.inc();
    this.completed.push(
      this.event('statement.completed', {
        statement: e.id,
        tags: e.tags,
        rows: e.rows,
        durationMs: e.durationMs,
        ...(e.error ? { sqlstate: e.error.sqlstate, error: e.error.message } : {}),
        ...(e.skipped ? { skipped: true } : {}),
        ...(e.suspended ? { suspended: true } : {}),
      }),
    );
  }

  private startedEvent(s: StatementStart): AuditEventInput {
    return this.event('statement.started', {
      statement: s.id,
      protocol: s.protocol,
      text: this.recordedText(s.text),
      ...(s.statementName ? { statementName: s.statementName } : {}),
      ...(s.portal ? { portal: s.portal } : {}),
      ...(s.params ? { params: s.params.map((p) => this.recordedParam(p)) } : {}),
      ...(s.rule !== undefined ? { rule: s.rule } : {}),
    });
  }

  private deniedEvent(verdict: Verdict & { action: 'deny' }, data: Record<string, unknown> & { text: string }): AuditEventInput {
    this.ctx.metrics.statementDenials.labels('postgres', this.resource, verdict.rule).inc();
    return this.event('statement.denied', { ...data, text: this.recordedText(data.text), rule: verdict.rule, reason: verdict.reason });
  }

  /** Statement text as the audit log keeps it: password literals redacted, and for a masked session, what the detectors find. */
  private recordedText(text: string): string {
    const redacted = redactCredentials(text, { sql: true });
    return this.masker ? this.masker.detectInText(redacted) : redacted;
  }

  /** A bind parameter as the audit log and approval requests keep it. */
  private recordedParam(p: string | null): string | null {
    if (p === null) return null;
    const redacted = redactCredentials(p, { sql: false });
    return this.masker ? this.masker.detectInText(redacted) : redacted;
  }

  private event(type: AuditEventInput['type'], data: Record<string, unknown>): AuditEventInput {
    return { type, time: new Date().toISOString(), sessionId: this.id, principal: principalRef(this.principal), resource: this.resource, data };
  }

  private protocolViolation(err: unknown): void {
    const pe = err instanceof ProtocolError ? err : undefined;
    this.terminate({
      code: pe?.code ?? 'protocol_violation',
      sqlstate: pe?.sqlstate ?? '08P01',
      message: pe?.message ?? 'malformed message from the client',
    });
  }

  private auditFailed(err: unknown): void {
    this.ctx.metrics.auditFailures.inc();
    this.ctx.log.error({ session: this.id, code: err instanceof StoreError ? err.code : 'store_error', err: String(err) }, 'audit write failed');
  }

  private pauseClient(reason: number): void {
    this.pauses |= reason;
    this.client.pause();
  }

  private resumeClient(reason: number): void {
    this.pauses &= ~reason;
    if (this.pauses === 0 && !this.closed) this.client.resume();
  }

  private close(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.exchange?.fail(new Error('the session closed'));
    this.holdAbort?.abort();
    if (this.holdRequest !== undefined) {
      // A waiting client that went away cancels its request: the statement must never run later.
      const id = this.holdRequest;
      void this.ctx.approvals.cancel(id, 'the waiting session ended').catch((err) => this.ctx.log.error({ session: this.id, id, err: String(err) }, 'could not cancel an approval request'));
    }
    this.backend.removeListener('data', this.onBackendData);
    if (this.closeReason === 'client_closed') this.closeReason = reason;
    clearTimeout(this.endTimer);
    if (!this.backend.destroyed) this.backend.end(terminateMessage());
    if (!this.client.destroyed) this.client.end();
    setTimeout(() => {
      this.backend.destroy();
      this.client.destroy();
    }, 5000).unref();
    const events = this.completed;
    this.completed = [];
    events.push(
      this.event('session.closed', {
        reason: this.closeReason,
        durationMs: Date.now() - this.openedAt.getTime(),
        bytesFromClient: this.bytesFromClient,
        bytesToClient: this.bytesToClient,
        statements: this.statements,
      }),
    );
    void this.ctx.events.record(events, { defer: true }).catch((err) => this.auditFailed(err));
    this.onClosed(this);
  }
}
