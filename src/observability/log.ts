import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * Structured JSON logs. Known secret-bearing keys are censored as a second
 * line of defence; the first is that code never logs tokens or credentials.
 */
export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  return pino(
    {
      level,
      base: { service: 'sluice' },
      redact: {
        paths: ['password', 'token', '*.password', '*.token', 'authorization', '*.authorization', 'req.headers.authorization'],
        censor: '[redacted]',
      },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination ?? process.stdout,
  );
}
