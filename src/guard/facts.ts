/** The guard judges the facts src/sql derives from the real PostgreSQL parse tree. */
export type { StatementFacts, StatementKind } from '../sql/facts.js';
