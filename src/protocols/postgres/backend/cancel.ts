import { cancelRequest } from '../codec/frontend-serializer.js';
import { BackendError } from './errors.js';
import type { BackendTarget } from './connect.js';
import { describeBackend, openTransport, timeoutError } from './transport.js';
import { socketStep } from './socket-step.js';

/**
 * Asks the backend to cancel the statement running on the session `key`
 * identifies, over a new connection (TLS as the target's mode says). The
 * server answers nothing and closes the connection; whether a statement was
 * actually cancelled shows on the session itself (SQLSTATE 57014).
 */
export async function sendCancel(
  target: Pick<BackendTarget, 'host' | 'port' | 'tls' | 'connectTimeoutMs'>,
  key: { pid: number; secret: number },
): Promise<void> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), target.connectTimeoutMs);
  try {
    const { socket } = await openTransport(target, abort.signal);
    socket.write(cancelRequest(key.pid, key.secret));
    await socketStep<void>(socket, abort.signal, {
      data: () => {},
      closed: () => undefined,
      failed: (err) =>
        new BackendError('backend_unreachable', `cancel request to ${describeBackend(target)} failed: ${err.message}`, '08006', { cause: err }),
      timedOut: () => timeoutError(target, 'the cancel request'),
    });
    socket.destroy();
  } finally {
    clearTimeout(timer);
  }
}
