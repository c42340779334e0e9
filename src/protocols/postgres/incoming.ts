import type { Socket } from 'node:net';
import type { Frame, FrameReader } from './codec/frame-reader.js';
import { ProtocolError } from './codec/errors.js';

/**
 * Reads the startup phase of a client connection one packet at a time. The
 * relay takes over the same FrameReader afterwards, so bytes a client
 * pipelines behind its password are not lost.
 */
export class Incoming {
  private socket?: Socket;
  private wake?: () => void;
  private failure?: Error;

  constructor(readonly reader: FrameReader) {}

  attach(socket: Socket): void {
    this.detach();
    this.socket = socket;
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('close', this.onEnd);
    socket.on('error', this.onError);
  }

  detach(): void {
    const s = this.socket;
    if (!s) return;
    s.removeListener('data', this.onData);
    s.removeListener('end', this.onEnd);
    s.removeListener('close', this.onEnd);
    s.removeListener('error', this.onError);
    this.socket = undefined;
  }

  /** Fails any pending read, for example when the authentication timer fires. */
  abort(err: Error): void {
    this.failure ??= err;
    this.wake?.();
  }

  nextStartup(): Promise<Buffer> {
    return this.until(() => this.reader.nextStartup());
  }

  nextFrame(): Promise<Frame> {
    return this.until(() => this.reader.next());
  }

  private async until<T>(take: () => T | undefined): Promise<T> {
    for (;;) {
      if (this.failure) throw this.failure;
      const v = take();
      if (v !== undefined) return v;
      await new Promise<void>((r) => (this.wake = r));
      this.wake = undefined;
    }
  }

  private readonly onData = (chunk: Buffer): void => {
    try {
      this.reader.push(chunk);
    } catch (err) {
      this.failure ??= err as Error;
    }
    this.wake?.();
  };

  private readonly onEnd = (): void => {
    this.failure ??= new ProtocolError('client_disconnected', 'the client closed the connection during startup');
    this.wake?.();
  };

  private readonly onError = (err: Error): void => {
    this.failure ??= err;
    this.wake?.();
  };
}
