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
  if (plan?.passthrough) return undefined;
  if (payload.length < 2) throw new RangeError('DataRow shorter than its field count');
  const n = payload.readUInt16BE(0);
  const columns = plan && plan.columns.length === n ? plan.columns : undefined;
  const parts: Buffer[] = [];
  let copiedTo = 0;
  let pos = 2;
  let total = 0;
  for (let i = 0; i < n; i++) {
    if (pos + 4 > payload.length) throw new RangeError(`DataRow field ${i + 1} runs past the message`);
    const len = payload.readInt32BE(pos);
    const start = pos;
    pos += 4;
    if (len === -1) continue;
    if (len < 0 || pos + len > payload.length) throw new RangeError(`DataRow field ${i + 1} has length ${len}`);
    const value = payload.subarray(pos, pos + len);
    pos += len;
    const out = maskValue(value, columns ? columns[i] : undefined, ctx);
    if (out === undefined) continue;
    if (start > copiedTo) parts.push(payload.subarray(copiedTo, start));
    const head = Buffer.allocUnsafe(4);
    head.writeInt32BE(out === null ? -1 : out.length);
    parts.push(head);
    if (out !== null) parts.push(out);
    total += start - copiedTo + 4 + (out === null ? 0 : out.length);
    copiedTo = pos;
  }
  if (pos !== payload.length) throw new RangeError('DataRow has bytes after its last field');
  if (parts.length === 0) return undefined;
  if (copiedTo < payload.length) {
    parts.push(payload.subarray(copiedTo));
    total += payload.length - copiedTo;
  }
  const header = Buffer.allocUnsafe(5);
  header[0] = BE.DataRow;
  header.writeInt32BE(total + 4, 1);
  return Buffer.concat([header, ...parts], total + 5);
}
