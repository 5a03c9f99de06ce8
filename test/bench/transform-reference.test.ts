/**
 * The benchmark's hand-written reference must do the same job as the engine, or its rows/s mean nothing: on the
 * bench events (BTG ones included) its lines equal the engine's, line for line.
 */
import { describe, expect, it } from 'vitest';
import { buildTransformInput } from '../../bench/transform.js';
import { createReferenceTransform } from '../../bench/transform-reference.js';
import { builtinMappingPath, createSerializer, loadMapping, mapEvent } from '../../src/mapping/index.js';

describe('bench/transform-reference', () => {
  it('writes the same lines as the Epic mapping for the bench events', () => {
    const { lines, lookup } = buildTransformInput({ events: 3000, seed: 11 });
    const mapping = loadMapping(builtinMappingPath('epic'));
    const serializer = createSerializer(mapping);
    const reference = createReferenceTransform(lookup);
    let btg = 0;
    for (const line of lines) {
      const event = JSON.parse(line);
      const engine = serializer.lines(mapEvent(event, mapping, lookup));
      const handWritten = reference.line(event);
      expect(handWritten === undefined ? [] : [handWritten]).toEqual(engine);
      if (event.purposeOfEvent) btg += 1;
    }
    expect(btg).toBeGreaterThan(10);
  });
});
