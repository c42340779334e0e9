import { SluiceError } from '../../../errors.js';

/**
 * A peer sent bytes that are not valid PostgreSQL protocol (or a value cannot
 * be put on the wire). `sqlstate` is what to send the client in the
 * ErrorResponse before closing the connection.
 */
export class ProtocolError extends SluiceError {
  readonly sqlstate: string;
  constructor(code: string, message: string, sqlstate?: string) {
    super(code, message);
    this.name = 'ProtocolError';
    this.sqlstate = sqlstate ?? defaultSqlstate(code);
  }
}

function defaultSqlstate(code: string): string {
  switch (code) {
    case 'frame_too_large':
      return '54000'; // program_limit_exceeded
    case 'protocol_unsupported':
      return '0A000'; // feature_not_supported, as PostgreSQL answers an unknown protocol version
    case 'text_malformed':
      return '22021'; // character_not_in_repertoire
    default:
      return '08P01'; // protocol_violation
  }
}
