import { detectCell, maskCell, maskUnknown, type CellDetectors } from '../../../masking/cells.js';
import { BE } from '../codec/message-types.js';
import type { ColumnPlan, RowPlan } from './row-plan.js';

export interface CellContext {
  readonly key: Buffer;
  readonly detectors?: CellDetectors;
  readonly maxValueBytes: number;
}

/** undefined: keep the value; null: SQL NULL; a Buffer: the replacement. */
export function maskValue(value: Buffer, col: ColumnPlan | undefined, ctx: CellContext): Buffer | null | undefined {
  if (col === undefined || col.whole) return maskUnknown(col?.typeOid);
  if (col.mask) return maskCell(value, col.typeOid, col.mask, ctx.key);
  if (col.detect && ctx.detectors) return detectCell(value, col.typeOid, col.format, ctx.detectors, ctx.key, ctx.maxValueBytes);
  return undefined;
}

/**
 * Rewrites one DataRow payload under a plan; `plan` undefined means the row
 * layout is unknown, and every value is masked. Returns the whole new
 * message, or undefined when no value changed (the original bytes go on).
 * A row whose field count disagrees with the plan is masked whole too.
 */
export function maskDataRow(payload: Buffer, plan: RowPlan | undefined, ctx: CellContext): Buffer | undefined {
  if (payload.length < 2) throw new RangeError('DataRow shorter than its field count');
  const n = payload.readUInt16BE(0);
  // A row of another width than its description is not the described result: nothing about it can be trusted.
  if (plan?.passthrough && plan.columns.length === n) return undefined;
  const columns = plan && plan.columns.length === n ? plan.columns : undefined;
  // Changed fields as (start of the length word, end of the value, replacement); built into one buffer at the end.
  let changes: (number | Buffer | null)[] | undefined;
  let size = payload.length;
  let pos = 2;
  for (let i = 0; i < n; i++) {
    if (pos + 4 > payload.length) throw new RangeError(`DataRow field ${i + 1} runs past the message`);
    const len = payload.readInt32BE(pos);
    const start = pos;
    pos += 4;
    if (len === -1) continue;
    if (len < 0 || pos + len > payload.length) throw new RangeError(`DataRow field ${i + 1} has length ${len}`);
    const col = columns ? columns[i] : undefined;
    // Slicing costs more than the rest of a field's work: only fields the plan touches are sliced.
    if (col !== undefined && !col.whole && col.mask === undefined && !col.detect) {
      pos += len;
      continue;
    }
    const out = maskValue(payload.subarray(pos, pos + len), col, ctx);
    pos += len;
    if (out === undefined) continue;
    (changes ??= []).push(start, pos, out);
    size += (out === null ? 0 : out.length) - len;
  }
  if (pos !== payload.length) throw new RangeError('DataRow has bytes after its last field');
  if (changes === undefined) return undefined;
  const msg = Buffer.allocUnsafe(size + 5);
  msg[0] = BE.DataRow;
  msg.writeInt32BE(size + 4, 1);
  let at = 5;
  let copied = 0;
  for (let k = 0; k < changes.length; k += 3) {
    const start = changes[k] as number;
    const end = changes[k + 1] as number;
    const out = changes[k + 2] as Buffer | null;
    at += payload.copy(msg, at, copied, start);
    at = msg.writeInt32BE(out === null ? -1 : out.length, at);
    if (out !== null) at += out.copy(msg, at);
    copied = end;
  }
  payload.copy(msg, at, copied);
  return msg;
}
