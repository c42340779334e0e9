import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BackendScanner } from '../../../src/protocols/postgres/backend-scanner.js';

const E = 0x45;
const D = 0x44;
const Z = 0x5a;

function frame(type: number, payload: Buffer): Buffer {
  const b = Buffer.alloc(5 + payload.length);
  b[0] = type;
  b.writeInt32BE(4 + payload.length, 1);
  payload.copy(b, 5);
  return b;
}

describe('BackendScanner offsets', () => {
  it('reports where each wanted message starts and ends in the stream, however it is cut', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ type: fc.constantFrom(E, D, Z), payload: fc.uint8Array({ maxLength: 40 }) }), { minLength: 1, maxLength: 12 }),
        fc.array(fc.nat(), { maxLength: 8 }),
        (messages, cuts) => {
          const frames = messages.map((m) => frame(m.type, Buffer.from(m.payload)));
          const stream = Buffer.concat(frames);
          const spans: { type: number; start: number; end: number }[] = [];
          for (const f of frames) {
            const start = spans.length ? spans[spans.length - 1].end : 0;
            spans.push({ type: f[0], start, end: start + f.length });
          }
          const expected = spans.filter((m) => m.type !== D);
          const seen: { type: number; start: number; end: number }[] = [];
          const scanner = new BackendScanner(
            (type) => type !== D,
            (type, payload, start, end) => {
              expect(end - start).toBe(payload.length + 5);
              seen.push({ type, start, end });
            },
          );
          const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
          let prev = 0;
          for (const p of [...points, stream.length]) {
            scanner.scan(stream.subarray(prev, p));
            expect(scanner.position).toBe(p);
            // An incomplete ErrorResponse is reported from its first byte, so the relay can hold it back whole.
            const held = scanner.incompleteStart((type) => type === E);
            const inside = spans.find((m) => m.type === E && m.start < p && m.end > p);
            expect(held).toBe(inside?.start);
            prev = p;
          }
          expect(seen).toEqual(expected);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('names the type of a message whose header is cut after its first byte', () => {
    const scanner = new BackendScanner(
      () => true,
      () => undefined,
    );
    scanner.scan(frame(Z, Buffer.from('I')));
    scanner.scan(Buffer.from([E, 0]));
    expect(scanner.incompleteStart((type) => type === E)).toBe(6);
    expect(scanner.incompleteStart((type) => type === D)).toBeUndefined();
  });
});
