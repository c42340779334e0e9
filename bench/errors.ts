import { SluiceError } from '../src/errors.js';

/** Something the benchmark harness needs is missing or broke; the message says what to do. */
export class BenchError extends SluiceError {
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'BenchError';
  }
}
