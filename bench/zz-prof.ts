import { builtinMappingPath, createFillCounter, createSerializer, loadMapping, mapEvent } from '../src/mapping/index.js';
import { buildTransformInput } from './transform.js';
import { createReferenceTransform } from './transform-reference.js';

const { lines, lookup } = buildTransformInput({ events: 200000 });
const mapping = loadMapping(builtinMappingPath('epic'));
const serializer = createSerializer(mapping);
const mode = process.argv[2] ?? 'engine';
const parsed = lines.map((l) => JSON.parse(l));
const ref = createReferenceTransform(lookup);
for (let r = 0; r < 6; r++) {
  const t = performance.now();
  let bytes = 0;
  const counter = createFillCounter(mapping);
  for (const ev of parsed) {
    if (mode === 'engine') {
      const result = mapEvent(ev, mapping, lookup);
      for (const out of serializer.lines(result)) bytes += out.length;
      counter.addResult(result);
    } else {
      const o = ref.line(ev);
      if (o) bytes += o.length;
    }
  }
  console.log(mode, (performance.now() - t).toFixed(0), 'ms (no parse)', bytes);
}
