import { SluiceError } from '../errors.js';

/** classify() was called before initSqlParser() resolved. */
export class SqlParserNotReadyError extends SluiceError {
  constructor() {
    super('sql_parser_not_ready', 'The SQL parser is not loaded: await initSqlParser() once at startup before classifying statements.');
    this.name = 'SqlParserNotReadyError';
  }
}
