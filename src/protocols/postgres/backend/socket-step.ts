import type { Socket } from 'node:net';

export interface StepHooks<T> {
  /** Handles one received chunk; settles the step through `ok` or `fail` (throwing counts as fail). */
  data?(chunk: Buffer, ok: (v: T) => void, fail: (err: unknown) => void): void;
  /** An event that completes the step with `undefined` ('connect', 'secureConnect'). */
  until?: string;
  /** The peer went away first: the error to reject with, or undefined when that is the expected end. */
  closed(): Error | undefined;
  /** A socket error, mapped. */
  failed(err: Error): Error;
  /** The deadline passed. */
  timedOut(): Error;
}

/**
 * Runs one handshake step on a socket and removes every listener it added
 * before settling, so the socket can be handed on with nothing of ours left
 * on it. A step that reads leaves the socket paused, so bytes that arrive
 * after it stay queued in the socket for the next reader. On failure or
 * timeout the socket is destroyed.
 */
export function socketStep<T>(socket: Socket, signal: AbortSignal, hooks: StepHooks<T>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    const cleanup = (): void => {
      settled = true;
      if (hooks.data) {
        socket.pause();
        socket.off('data', onData);
      }
      if (hooks.until) socket.off(hooks.until, onUntil);
      socket.off('error', onError);
      socket.off('end', onClose);
      socket.off('close', onClose);
      signal.removeEventListener('abort', onAbort);
    };
    const ok = (v: T): void => {
      if (settled) return;
      cleanup();
      resolve(v);
    };
    const fail = (err: unknown): void => {
      if (settled) return;
      cleanup();
      destroyQuietly(socket);
      reject(err);
    };
    const onData = (chunk: Buffer): void => {
      if (settled) return;
      try {
        hooks.data!(chunk, ok, fail);
      } catch (err) {
        fail(err);
      }
    };
    const onUntil = (): void => ok(undefined as T);
    const onError = (err: Error): void => fail(hooks.failed(err));
    const onClose = (): void => {
      const err = hooks.closed();
      if (err) fail(err);
      else ok(undefined as T);
    };
    const onAbort = (): void => fail(hooks.timedOut());

    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort);
    socket.on('error', onError);
    socket.on('end', onClose);
    socket.on('close', onClose);
    if (hooks.until) socket.on(hooks.until, onUntil);
    if (hooks.data) {
      socket.on('data', onData);
      socket.resume();
    }
  });
}

/** Destroys a socket we give up on; errors it may still report are of no interest any more. */
export function destroyQuietly(socket: Socket): void {
  socket.on('error', () => {});
  socket.destroy();
}
