/**
 * Every error Sluice raises on purpose is a SluiceError: it carries a stable
 * code (for logs, metrics and API responses) and a message that tells the
 * user what to do. Messages never contain tokens or credentials.
 */
export class SluiceError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SluiceError';
    this.code = code;
  }
}

/** A presented credential was refused (maps to SQLSTATE 28000 / HTTP 401). */
export class AuthenticationError extends SluiceError {
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'AuthenticationError';
  }
}

/** The configuration is invalid; `path` names the bad key (`resources[2].upstream.port`). */
export class ConfigError extends SluiceError {
  readonly issues: readonly { path: string; message: string }[];
  constructor(issues: readonly { path: string; message: string }[]) {
    super('config_invalid', issues.map((i) => `${i.path || '(root)'}: ${i.message}`).join('\n'));
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

/** The audit store could not durably write; the statement it describes must not run. */
export class StoreError extends SluiceError {
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'StoreError';
  }
}
