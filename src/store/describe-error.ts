/** A short cause for an error message: SQLite's code and message, never parameters. */
export function describeError(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return typeof code === 'string' && code !== '' ? `${code}: ${err.message}` : err.message;
  }
  return String(err);
}
