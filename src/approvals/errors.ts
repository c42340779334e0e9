import { SluiceError } from '../errors.js';

/** A request or decision Sluice refused; `status` is the HTTP status the API answers with. */
export class ApprovalError extends SluiceError {
  readonly status: number;
  constructor(code: string, status: number, message: string) {
    super(code, message);
    this.name = 'ApprovalError';
    this.status = status;
  }
}
