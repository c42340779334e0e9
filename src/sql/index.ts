export type { ColumnClause, ColumnUse, CopyFacts, StatementFacts, StatementKind } from './facts.js';
export type { Classification, ClassifyLimits } from './classify.js';
export { classify, initSqlParser, DEFAULT_MAX_BYTES, DEFAULT_MAX_DEPTH } from './classify.js';
export { ClassificationCache, classifyCached, DEFAULT_CACHE_BYTES } from './cache.js';
export { SqlParserNotReadyError } from './errors.js';
