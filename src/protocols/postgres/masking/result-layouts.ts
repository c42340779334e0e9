import type { FieldDescription } from '../codec/backend-parser.js';
import type { CopyPlan, RowPlan } from './row-plan.js';

/** What the guard decided about one statement's output, carried until its rows arrive. */
export interface StatementOutput {
  readonly maskAll: boolean;
  /**
   * Its result always has the shape a Describe of the statement reported
   * (a SELECT or DML; PostgreSQL refuses to run it otherwise). A FETCH or
   * EXECUTE can return another shape each time, so its rows need a Describe
   * of the portal.
   */
  readonly stableShape?: boolean;
  /** COPY TO: how its rows are laid out and masked (undefined: mask every field). */
  readonly copy?: CopyPlan;
}

interface Prepared {
  readonly out: StatementOutput;
  fields?: readonly FieldDescription[] | null;
}

interface Portal {
  readonly statement?: Prepared;
  readonly formats: readonly number[];
  /** From Describe of the portal: fields with the formats the rows will have. */
  fields?: readonly FieldDescription[] | null;
}

type Expectation =
  | { readonly t: 'query'; readonly outs: readonly StatementOutput[]; index: number }
  | { readonly t: 'parse'; readonly name: string; readonly out: StatementOutput }
  | { readonly t: 'bind'; readonly portal: string; readonly statement: string; readonly formats: readonly number[] }
  | { readonly t: 'describe'; readonly target: 'S' | 'P'; readonly name: string }
  | { readonly t: 'execute'; readonly portal: string; plan?: RowPlan | null }
  | { readonly t: 'close'; readonly target: 'S' | 'P'; readonly name: string }
  | { readonly t: 'sync' };

export type PlanRows = (fields: readonly FieldDescription[], formats: readonly number[] | undefined, out: StatementOutput) => RowPlan;

const NO_OUTPUT: StatementOutput = { maskAll: false };

/**
 * Which row layout each DataRow and CopyData has. The backend answers client
 * messages strictly in order, so a FIFO of what each sent message will be
 * answered with tells which Describe a RowDescription answers and which
 * Execute a DataRow belongs to. State changes (a statement parsed, a portal
 * bound) are applied when the backend confirms them, never when sent: a
 * failed Parse must not leave its text's layout behind. Rows whose layout
 * is not known (a prepared statement executed without Describe, a portal
 * bound before its statement was described) get no plan, and the masker
 * then masks every value. Pure.
 */
export class ResultLayouts {
  private readonly queue: Expectation[] = [];
  private readonly statements = new Map<string, Prepared>();
  private readonly portals = new Map<string, Portal>();
  /** Simple query: the plan of the statement whose rows are arriving. */
  private current: RowPlan | null = null;
  private copy: { out: StatementOutput } | null = null;
  private copyingIn = false;

  constructor(private readonly plan: PlanRows) {}

  query(outs: readonly StatementOutput[]): void {
    this.queue.push({ t: 'query', outs, index: 0 });
  }

  /** The last query was not sent after all (its audit record failed). */
  withdrawLastQuery(): void {
    if (this.queue[this.queue.length - 1]?.t === 'query') this.queue.pop();
  }

  parse(name: string, out: StatementOutput): void {
    this.queue.push({ t: 'parse', name, out });
  }

  bind(portal: string, statement: string, formats: readonly number[]): void {
    this.queue.push({ t: 'bind', portal, statement, formats });
  }

  describe(target: 'S' | 'P', name: string): void {
    this.queue.push({ t: 'describe', target, name });
  }

  execute(portal: string): void {
    this.queue.push({ t: 'execute', portal });
  }

  close(target: 'S' | 'P', name: string): void {
    this.queue.push({ t: 'close', target, name });
  }

  sync(): void {
    if (!this.copyingIn) this.queue.push({ t: 'sync' });
  }

  /**
   * CopyInResponse: until the client ends the copy the backend ignores Sync,
   * so Syncs sent along with the COPY's Execute are not answered.
   */
  copyIn(): void {
    this.copyingIn = true;
    if (this.queue[0]?.t !== 'query') this.queue.splice(1, this.queue.length - 1, ...this.queue.slice(1).filter((e) => e.t !== 'sync'));
  }

  /** The client sent CopyDone or CopyFail. */
  copyEnd(): void {
    this.copyingIn = false;
  }

  parseComplete(): void {
    const head = this.shift('parse');
    if (head) this.statements.set(head.name, { out: head.out });
  }

  bindComplete(): void {
    const head = this.shift('bind');
    if (head) this.portals.set(head.portal, { statement: this.statements.get(head.statement), formats: head.formats });
  }

  closeComplete(): void {
    const head = this.shift('close');
    if (head) (head.target === 'S' ? this.statements : this.portals).delete(head.name);
  }

  rowDescription(fields: readonly FieldDescription[]): void {
    const head = this.queue[0];
    if (head?.t === 'query') {
      this.current = this.plan(fields, undefined, head.outs[head.index] ?? head.outs[head.outs.length - 1] ?? NO_OUTPUT);
      return;
    }
    if (head?.t === 'describe') this.described(fields);
  }

  noData(): void {
    if (this.queue[0]?.t === 'describe') this.described(null);
  }

  private described(fields: readonly FieldDescription[] | null): void {
    const head = this.shift('describe');
    if (!head) return;
    if (head.target === 'S') {
      const s = this.statements.get(head.name);
      if (s) s.fields = fields;
    } else {
      const p = this.portals.get(head.name);
      if (p) p.fields = fields;
    }
  }

  /** The plan for a DataRow arriving now; undefined when the layout is unknown. */
  rowPlan(): RowPlan | undefined {
    const head = this.queue[0];
    if (head?.t === 'query') return this.current ?? undefined;
    if (head?.t !== 'execute') return undefined;
    if (head.plan === undefined) head.plan = this.portalPlan(head.portal);
    return head.plan ?? undefined;
  }

  private portalPlan(name: string): RowPlan | null {
    const p = this.portals.get(name);
    if (!p) return null;
    const out = p.statement?.out ?? NO_OUTPUT;
    if (p.fields) return this.plan(p.fields, undefined, out);
    const fields = out.stableShape === true ? p.statement?.fields : undefined;
    return fields ? this.plan(fields, p.formats, out) : null;
  }

  /** CopyOutResponse: the statement now sending rows is a COPY TO. */
  copyOut(): void {
    const head = this.queue[0];
    if (head?.t === 'query') this.copy = { out: head.outs[head.index] ?? NO_OUTPUT };
    else if (head?.t === 'execute') this.copy = { out: this.portals.get(head.portal)?.statement?.out ?? NO_OUTPUT };
    else this.copy = { out: NO_OUTPUT };
  }

  /** The output decision of the statement the backend is answering now, when known. */
  currentOutput(): StatementOutput | undefined {
    const head = this.queue[0];
    if (head?.t === 'query') return head.outs[head.index];
    if (head?.t === 'execute') return this.portals.get(head.portal)?.statement?.out;
    return undefined;
  }

  /** The output decision of the COPY whose CopyData is arriving, or undefined outside a COPY. */
  copyOutput(): StatementOutput | undefined {
    return this.copy?.out;
  }

  /** CommandComplete or EmptyQueryResponse: one statement's output ended. */
  statementEnded(): void {
    this.current = null;
    this.copy = null;
    const head = this.queue[0];
    if (head?.t === 'query') head.index++;
    else if (head?.t === 'execute') this.queue.shift();
  }

  portalSuspended(): void {
    if (this.queue[0]?.t === 'execute') this.queue.shift();
  }

  /** ErrorResponse: outside a simple query the backend skips everything up to Sync. */
  error(): void {
    this.current = null;
    this.copy = null;
    if (this.queue[0]?.t === 'query') return;
    const stops = (e: Expectation | undefined): boolean => e === undefined || e.t === 'sync' || e.t === 'query';
    while (!stops(this.queue[0])) {
      const skipped = this.queue.shift()!;
      // A failed Parse drops the unnamed statement (PostgreSQL releases it first) but never an existing named one.
      if (skipped.t === 'parse' && skipped.name === '') this.statements.delete('');
      if (skipped.t === 'bind') this.portals.delete(skipped.portal);
    }
  }

  ready(status: 'I' | 'T' | 'E'): void {
    this.current = null;
    this.copy = null;
    while (this.queue.length > 0) {
      const e = this.queue.shift()!;
      if (e.t === 'sync' || e.t === 'query') break;
    }
    // Portals do not outlive their transaction.
    if (status === 'I') this.portals.clear();
  }

  private shift<T extends Expectation['t']>(t: T): Extract<Expectation, { t: T }> | undefined {
    const head = this.queue[0];
    if (head?.t !== t) return undefined;
    this.queue.shift();
    return head as Extract<Expectation, { t: T }>;
  }
}
