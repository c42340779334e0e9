import { SluiceError } from '../../../errors.js';

export type BackendErrorCode =
  | 'backend_unreachable'
  | 'backend_tls_failed'
  | 'backend_auth_failed'
  | 'backend_rejected'
  | 'backend_timeout'
  | 'backend_protocol';

/**
 * Sluice could not open (or cancel on) a connection to the real PostgreSQL
 * server. `sqlstate` is the backend's own when it sent an ErrorResponse
 * (e.g. 28P01 or 3D000), for the log; the gateway's client sees 08001, since
 * the backend's error describes Sluice's credential, not the caller's. The
 * message names host:port and user, never the password.
 */
export class BackendError extends SluiceError {
  override readonly code: BackendErrorCode;
  readonly sqlstate: string;
  /** The backend's ErrorResponse fields, when it sent one. */
  readonly fields?: Readonly<Record<string, string>>;
  constructor(code: BackendErrorCode, message: string, sqlstate: string, options?: { cause?: unknown; fields?: Record<string, string> }) {
    super(code, message, options);
    this.name = 'BackendError';
    this.code = code;
    this.sqlstate = sqlstate;
    this.fields = options?.fields;
  }
}
