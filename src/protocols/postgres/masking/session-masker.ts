import { functionKnown, resolveLoosely, type CatalogSnapshot } from '../../../masking/catalog.js';
import { judgeMasking, type MaskVerdict } from '../../../masking/judge.js';
import { resolveMasking, type MaskedColumns } from '../../../masking/resolve.js';
import { maskDetected } from '../../../masking/detectors.js';
import { maskingPlanKey, type MaskingPlan } from '../../../masking/rules.js';
import { REDACTED } from '../../../masking/strategies.js';
import { maskNotificationPayload, maskServerFields, type MessageMasking } from '../../../masking/server-messages.js';
import type { StatementFacts } from '../../../sql/index.js';
import type { BackendTarget } from '../backend/connect.js';
import { parseErrorFieldList, parseNotification, parseRowDescription } from '../codec/backend-parser.js';
import { BE } from '../codec/message-types.js';
import { fieldListMessage, notificationResponse } from '../codec/backend-serializer.js';
import type { CatalogCache } from './catalog-cache.js';
import { CSV_DEFAULTS, CopyRowMasker, KEEP, TEXT_DEFAULTS, type CopyFormat } from './copy-rows.js';
import { maskDataRow, maskValue, type CellContext } from './data-row.js';
import { ResultLayouts, type StatementOutput } from './result-layouts.js';
import { planRows, type ColumnPlan, type CopyPlan } from './row-plan.js';

/** Backend messages a masked session must see whole, beyond what the relay itself reads. */
export const MASKED_MESSAGE_TYPES: readonly number[] = [
  BE.RowDescription,
  BE.DataRow,
  BE.NoData,
  BE.BindComplete,
  BE.CloseComplete,
  BE.CopyOutResponse,
  BE.CopyData,
  BE.NoticeResponse,
  BE.NotificationResponse,
];
/** Messages that may carry row values: held back from the client until complete, so they can be replaced. */
export const VALUE_MESSAGE_TYPES: ReadonlySet<number> = new Set([BE.DataRow, BE.CopyData, BE.ErrorResponse, BE.NoticeResponse, BE.NotificationResponse]);

/** Statement kinds whose result shape a Describe of the statement fixes. */
const STABLE_SHAPE: ReadonlySet<string> = new Set(['select', 'insert', 'update', 'delete', 'merge']);

/** Statement facts whose names a snapshot knows, so a statement run again is not checked again. */
const knownBySnapshot = new WeakMap<CatalogSnapshot, WeakSet<StatementFacts>>();

const resolved = new WeakMap<CatalogSnapshot, Map<string, MaskedColumns>>();

/**
 * The masking side of one PostgreSQL session: judges statements against
 * the masked columns, follows which layout each result row has, and
 * rewrites the backend messages that carry values. The relay calls it only
 * for sessions a masking policy covers.
 */
export class SessionMasker {
  readonly layouts: ResultLayouts;
  private masked?: MaskedColumns;
  private readonly planKey: string;
  private readonly cells: CellContext;
  private readonly messages: MessageMasking;
  private copyMasker?: CopyRowMasker;

  constructor(
    readonly plan: MaskingPlan,
    private readonly key: Buffer,
    private readonly catalogs: CatalogCache,
    private readonly resource: string,
    private readonly target: BackendTarget,
  ) {
    this.planKey = maskingPlanKey(plan);
    const detectors = plan.detectors ? { names: plan.detectors.names, spec: plan.detectors.spec } : undefined;
    this.cells = { key, maxValueBytes: plan.maxValueBytes, ...(detectors ? { detectors } : {}) };
    this.messages = { key, ...(detectors ? { detectors } : {}) };
    this.layouts = new ResultLayouts((fields, formats, out) => {
      const plan = planRows(fields, formats, this.current(), out.maskAll);
      if (plan.unknownRelations.length > 0) this.catalogs.invalidate(this.resource);
      return plan;
    });
  }

  /**
   * Switches to the resource's current catalog snapshot; false when there is
   * none fresh, and it must be loaded before the next statement is judged.
   */
  useFreshCatalog(): boolean {
    const snapshot = this.catalogs.fresh(this.resource);
    if (!snapshot) return false;
    this.use(snapshot);
    return true;
  }

  async loadCatalog(): Promise<void> {
    this.use(await this.catalogs.load(this.resource, this.target));
  }

  /** Text the detectors found nothing in, or with what they found replaced (statement text and parameters for the audit log). */
  detectInText(text: string): string {
    const d = this.plan.detectors;
    if (!d) return text;
    return maskDetected(text, d.names, d.spec, this.key) ?? REDACTED;
  }

  /** DDL changed the catalog: every session of the resource reloads it before judging again. */
  catalogChanged(): void {
    this.catalogs.invalidate(this.resource);
  }

  /**
   * Names read by these statements that the catalog does not know: it may
   * predate them. A snapshot read within the last second is trusted, so
   * statements on relations that do not exist cannot make every statement
   * reload it.
   */
  unknownRelations(statements: readonly StatementFacts[]): boolean {
    if (this.catalogs.age(this.resource) < 1000) return false;
    const cat = this.current().catalog;
    let known = knownBySnapshot.get(cat);
    if (!known) knownBySnapshot.set(cat, (known = new WeakSet()));
    if (statements.every((s) => known.has(s))) return false;
    const unknown = (s: StatementFacts): boolean =>
      [s, ...(s.body ? [s.body] : [])].some((f) => (f.tablesRead ?? []).some((t) => resolveLoosely(cat, t).length === 0) || (f.functions ?? []).some((fn) => !functionKnown(cat, fn)));
    let any = false;
    for (const s of statements) {
      if (unknown(s)) any = true;
      else known.add(s);
    }
    return any;
  }

  judge(statements: readonly StatementFacts[]): { verdict: MaskVerdict; outputs: StatementOutput[] } {
    const masked = this.current();
    const verdict = judgeMasking(statements, masked);
    const maskAll = verdict.action === 'allow' && verdict.maskAll;
    const outputs = statements.map((f): StatementOutput => {
      const facts = f.kind === 'execute' && f.body ? f.body : f;
      const copy = facts.kind === 'copy.out' ? this.copyPlan(facts, maskAll) : undefined;
      const stableShape = STABLE_SHAPE.has(f.kind) && !(f.effects ?? []).includes('declare_cursor');
      return { maskAll, stableShape, ...(copy ? { copy } : {}) };
    });
    return { verdict, outputs };
  }

  private use(snapshot: CatalogSnapshot): void {
    if (this.masked?.catalog === snapshot) return;
    let byPlan = resolved.get(snapshot);
    if (!byPlan) resolved.set(snapshot, (byPlan = new Map()));
    let m = byPlan.get(this.planKey);
    if (!m) byPlan.set(this.planKey, (m = resolveMasking(this.plan, snapshot)));
    this.masked = m;
  }

  private current(): MaskedColumns {
    if (!this.masked) throw new Error('masking used before the catalog was loaded');
    return this.masked;
  }

  private copyPlan(f: StatementFacts, maskAll: boolean): CopyPlan {
    const c = f.copy;
    const format: CopyFormat =
      c?.format === 'binary'
        ? { kind: 'binary' }
        : c?.format === 'csv'
          ? {
              kind: 'csv',
              delimiter: c.delimiter ?? CSV_DEFAULTS.delimiter,
              quote: c.quote ?? CSV_DEFAULTS.quote,
              escape: c.escape ?? c.quote ?? CSV_DEFAULTS.escape,
              null: c.null ?? CSV_DEFAULTS.null,
              header: c.header === true,
            }
          : { kind: 'text', delimiter: c?.delimiter ?? TEXT_DEFAULTS.delimiter, null: c?.null ?? TEXT_DEFAULTS.null, header: c?.header === true };
    const binary = format.kind === 'binary' ? 1 : 0;
    const whole: ColumnPlan = { typeOid: 0, format: binary, whole: true, detect: false };
    if (maskAll) return { format, every: whole };
    const masked = this.current();
    const detectAll = masked.plan.detectors !== undefined && masked.detectorOids === undefined;
    const every: ColumnPlan = { typeOid: 0, format: binary, detect: detectAll };
    if (c?.query) return { format, every };
    const table = (f.tablesRead ?? [])[0];
    // Several schemas may hold the name: the first along the search path is the one COPY reads.
    const oid = f.tablesRead?.length === 1 && table !== undefined ? resolveLoosely(masked.catalog, table)[0] : undefined;
    const rel = oid === undefined ? undefined : masked.catalog.relations.get(oid);
    if (!rel) return { format, every: whole };
    const attnums = c?.columns
      ? c.columns.map((name) => [...rel.columns].find(([, col]) => col.name === name || col.name.toLowerCase() === name.toLowerCase())?.[0])
      : [...rel.columns].filter(([, col]) => !col.generated).map(([attnum]) => attnum).sort((a, b) => a - b);
    const fields = attnums.map((attnum) => ({
      name: '',
      tableOid: attnum === undefined ? 0 : rel.oid,
      columnAttr: attnum ?? 0,
      typeOid: attnum === undefined ? 0 : (rel.columns.get(attnum)?.typeOid ?? 0),
      typeSize: 0,
      typeMod: 0,
      format: binary,
    }));
    const planned = planRows(fields, undefined, masked, false).columns.map((col, i) => (attnums[i] === undefined ? whole : col));
    return { format, columns: planned, every: whole };
  }

  /**
   * A backend message seen whole. Returns the message to send instead, or
   * undefined to pass it on unchanged.
   */
  backendMessage(type: number, payload: Buffer): Buffer | undefined {
    const l = this.layouts;
    switch (type) {
      case BE.DataRow:
        return maskDataRow(payload, l.rowPlan(), this.cells);
      case BE.RowDescription:
        l.rowDescription(parseRowDescription(payload));
        return undefined;
      case BE.NoData:
        l.noData();
        return undefined;
      case BE.ParseComplete:
        l.parseComplete();
        return undefined;
      case BE.BindComplete:
        l.bindComplete();
        return undefined;
      case BE.CloseComplete:
        l.closeComplete();
        return undefined;
      case BE.CommandComplete:
      case BE.EmptyQueryResponse:
        this.copyMasker = undefined;
        l.statementEnded();
        return undefined;
      case BE.PortalSuspended:
        l.portalSuspended();
        return undefined;
      case BE.CopyInResponse:
        l.copyIn();
        return undefined;
      case BE.CopyOutResponse: {
        l.copyOut();
        const plan = l.copyOutput()?.copy;
        // A COPY nobody planned for (a function's COPY, an unexpected response) has every field masked.
        const format: CopyFormat = plan?.format ?? (payload[0] === 1 ? { kind: 'binary' } : TEXT_DEFAULTS);
        const column = (i: number): ColumnPlan | undefined => (plan ? (plan.columns?.[i] ?? plan.every) : undefined);
        this.copyMasker = new CopyRowMasker(
          format,
          (i, value) => {
            if (value === null) return KEEP;
            const out = maskValue(value, column(i), this.cells);
            return out === undefined ? KEEP : out;
          },
          (i) => {
            const c = column(i);
            return c === undefined || c.whole === true || c.mask !== undefined || c.detect;
          },
          plan?.columns?.length,
        );
        return undefined;
      }
      case BE.CopyData: {
        return this.copyMasker?.message(payload);
      }
      case BE.ErrorResponse: {
        const computed = l.currentOutput()?.maskAll === true;
        l.error();
        this.copyMasker = undefined;
        return this.serverFields(BE.ErrorResponse, payload, computed);
      }
      case BE.NoticeResponse:
        return this.serverFields(BE.NoticeResponse, payload, l.currentOutput()?.maskAll === true);
      case BE.NotificationResponse:
        return this.notification(payload);
      case BE.ReadyForQuery:
        l.ready(payload[0] === 0x54 ? 'T' : payload[0] === 0x45 ? 'E' : 'I');
        return undefined;
      default:
        return undefined;
    }
  }

  private serverFields(type: number, payload: Buffer, computed = false): Buffer | undefined {
    const fields = parseErrorFieldList(payload);
    const masked = maskServerFields(fields, this.messages, computed);
    return masked === fields ? undefined : fieldListMessage(type, masked);
  }

  private notification(payload: Buffer): Buffer | undefined {
    const n = parseNotification(payload);
    const masked = maskNotificationPayload(n.payload, this.plan.notifications, this.messages);
    return masked === n.payload ? undefined : notificationResponse(n.pid, n.channel, masked);
  }
}
