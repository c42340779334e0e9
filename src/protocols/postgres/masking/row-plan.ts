import type { FieldDescription } from '../codec/backend-parser.js';
import type { CopyFormat } from './copy-rows.js';
import type { MaskedColumns } from '../../../masking/resolve.js';
import type { StrategySpec } from '../../../masking/strategies.js';

const FIRST_NORMAL_OID = 16384;

export interface ColumnPlan {
  readonly typeOid: number;
  /** 0 text, 1 binary. */
  readonly format: number;
  /** The column's origin is a masked column. */
  readonly mask?: StrategySpec;
  /** Masked whatever its value: the whole result is masked, or its origin is unknown to the catalog. */
  readonly whole?: boolean;
  /** Detectors scan its values. */
  readonly detect: boolean;
}

/** How a COPY TO's rows are masked: per column when its columns are known, else `every` for all. */
export interface CopyPlan {
  readonly format: CopyFormat;
  readonly columns?: readonly ColumnPlan[];
  readonly every: ColumnPlan;
}

export interface RowPlan {
  readonly columns: readonly ColumnPlan[];
  /** No column needs anything: rows pass untouched and unparsed. */
  readonly passthrough: boolean;
  /** Relation OIDs RowDescription named that the catalog does not know: it is stale. */
  readonly unknownRelations: readonly number[];
}

/**
 * The plan for one result's rows, from its RowDescription fields (with the
 * formats the rows will actually have) and the session's masked columns.
 */
export function planRows(fields: readonly FieldDescription[], formats: readonly number[] | undefined, masked: MaskedColumns, maskAll: boolean): RowPlan {
  const detectors = masked.plan.detectors;
  const unknownRelations: number[] = [];
  const columns = fields.map((f, i): ColumnPlan => {
    const format = formats === undefined ? f.format : formats.length === 0 ? 0 : formats.length === 1 ? formats[0]! : (formats[i] ?? 0);
    const base = { typeOid: f.typeOid, format };
    if (maskAll) return { ...base, whole: true, detect: false };
    // System catalogs (OIDs below FirstNormalObjectId) hold no user data the snapshot could mask; detectors still apply.
    if (f.tableOid !== 0 && f.tableOid >= FIRST_NORMAL_OID) {
      const rel = masked.catalog.relations.get(f.tableOid);
      // A table or column the catalog has not seen (created since it was read) could be masked: fail closed until it is reloaded.
      if (!rel || !rel.columns.has(f.columnAttr)) {
        if (!unknownRelations.includes(f.tableOid)) unknownRelations.push(f.tableOid);
        return { ...base, whole: true, detect: false };
      }
      const spec = masked.byOid.get(f.tableOid)?.get(f.columnAttr);
      if (spec) return { ...base, mask: spec, detect: false };
    }
    const detect =
      detectors !== undefined &&
      (masked.detectorOids === undefined || (f.tableOid !== 0 && masked.detectorOids.get(f.tableOid)?.has(f.columnAttr) === true));
    return { ...base, detect };
  });
  return { columns, passthrough: columns.every((c) => !c.mask && !c.whole && !c.detect), unknownRelations };
}
