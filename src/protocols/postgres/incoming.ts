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
  private paused = false;

  /**
   * `maxBuffered` bounds what an unauthenticated client can make Sluice hold:
   * past it the socket is paused, and a packet that still has not arrived
   * whole is refused.
   */
  constructor(
    readonly reader: FrameReader,
    private readonly maxBuffered: number,
  ) {}

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
    this.paused = false;
  }

  /** Throws what ended the connection (client gone, timeout) if anything has. */
  throwIfFailed(): void {
    if (this.failure) throw this.failure;
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
      if (this.reader.buffered >= this.maxBuffered) {
        throw new ProtocolError(
          'frame_too_large',
          `more than ${this.maxBuffered} bytes arrived before authentication finished; a startup packet and a token are far smaller`,
        );
      }
      if (this.paused) {
        this.paused = false;
        this.socket?.resume();
      }
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
    if (this.reader.buffered >= this.maxBuffered && !this.paused) {
      this.paused = true;
      this.socket?.pause();
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
