#!/usr/bin/env node
// Kernel throughput: the SIMD Wasm kernels vs a plain JavaScript loop doing the same work, and a
// memory-copy baseline (Float32Array.prototype.set of the same element count) measured in the same run.
//
// GB/s convention: bytes of the caller's arrays read + written, divided by the median wall time
//   fakeQuantize 8 B/elem (f32 in, f32 out)   quantize int8 5 B/elem (f32 in, i8 out)
//   minMax 4 B/elem   histogram 4 B/elem   cosine 8 B/elem (two f32 inputs)   copy 8 B/elem (read + write)
// Fairness: outputs are preallocated once per size and passed in (`out` for the Wasm kernels, the same
// arrays for the JS loops), so neither side measures allocation; inputs are the same arrays for both.
// "(resident)" rows keep the inputs in kernel memory (k.allocate): no copies through the Wasm scratch
// buffers; their plain JS column runs on the same resident arrays.
// Run with `npm run bench` after `npm run build`. Options: --sizes=4,16 (Mi elements), --runs=7.
import { getKernels, referenceKernels } from '../dist/kernels.js';
import { emitTable } from './report.mjs';

const args = Object.fromEntries(
  process.argv.slice(2).map((a) => {
    const [k, v] = a.replace(/^--/, '').split('=');
    return [k, v ?? 'true'];
  }),
);
const SIZES = (args.sizes ?? '4,16').split(',').map((s) => Number(s) * 1024 * 1024);
const RUNS = Number(args.runs ?? 7);
const WARMUP = 2;
const BINS = 2048;

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function time(fn) {
  for (let i = 0; i < WARMUP; i++) fn();
  const ts = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    fn();
    ts.push(performance.now() - t0);
  }
  return median(ts) / 1000;
}

// ---- plain JavaScript loops doing the same work (ties to even, float32 rounding, f64 sums) ----

function roundEven(v) {
  let r = Math.round(v);
  if (r - v === 0.5 && (r & 1) !== 0) r -= 1; // Math.round rounds ties up
  return r;
}

function jsFakeQuantize(x, out, s, zp, qmin, qmax) {
  const lo = qmin - zp;
  const hi = qmax - zp;
  for (let i = 0; i < x.length; i++) {
    const v = Math.fround(x[i] / s);
    let r = v !== v ? 0 : roundEven(v);
    r = r < lo ? lo : r > hi ? hi : r;
    out[i] = r * s;
  }
}

function jsQuantize(x, out, s, zp, qmin, qmax) {
  for (let i = 0; i < x.length; i++) {
    const v = Math.fround(x[i] / s);
    let r = v !== v ? zp : roundEven(v) + zp;
    out[i] = r < qmin ? qmin : r > qmax ? qmax : r;
  }
}

function jsMinMax(x) {
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return { min, max };
}

function jsHistogram(x, lo, hi, counts) {
  const bins = counts.length;
  const k = Math.fround(bins / (hi - lo));
  const top = bins - 1;
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    if (v !== v) continue;
    const t = Math.fround(Math.fround(v - lo) * k);
    counts[t >= top ? top : t > 0 ? Math.floor(t) : 0] += 1;
  }
}

function jsCosine(a, b) {
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i];
    const y = b[i];
    ab += x * y;
    aa += x * x;
    bb += y * y;
  }
  return ab / Math.sqrt(aa * bb);
}

// ---- run ----

const k = await getKernels();
if (k.backend !== 'wasm-simd') console.warn(`warning: kernels backend is ${k.backend}`);

const rows = [];
let seed = 12345;
const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 4294967296) * 2 - 1;

for (const n of SIZES) {
  const x = new Float32Array(n);
  const y = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    x[i] = rand() * 3;
    y[i] = x[i] + 0.01 * rand();
  }
  const outF = new Float32Array(n);
  const outQ = new Int8Array(n);
  const copyDst = new Float32Array(n);
  const counts = new Float64Array(BINS);
  const s = 3 / 127;
  const { min, max } = k.minMax(x);

  const copyT = time(() => copyDst.set(x));
  const copyGBs = (8 * n) / copyT / 1e9;
  rows.push({ kernel: 'copy (TypedArray.set)', n, wasm: copyGBs, js: copyGBs });

  const bench = (kernel, bytesPerElem, wasmFn, jsFn) => {
    const tw = time(wasmFn);
    const tj = time(jsFn);
    rows.push({ kernel, n, wasm: (bytesPerElem * n) / tw / 1e9, js: (bytesPerElem * n) / tj / 1e9, copy: copyGBs });
  };
  bench(
    'fakeQuantize int8',
    8,
    () => k.fakeQuantize(x, s, 0, { type: 'int8', out: outF }),
    () => jsFakeQuantize(x, outF, Math.fround(s), 0, -128, 127),
  );
  bench(
    'quantize int8',
    5,
    () => k.quantize(x, s, 0, { type: 'int8', out: outQ }),
    () => jsQuantize(x, outQ, Math.fround(s), 0, -128, 127),
  );
  bench('minMax', 4, () => k.minMax(x), () => jsMinMax(x));
  bench(
    `histogram ${BINS} bins`,
    4,
    () => k.histogram(x, min, max, counts),
    () => jsHistogram(x, Math.fround(min), Math.fround(max), counts),
  );
  bench('cosine', 8, () => k.cosine(x, y), () => jsCosine(x, y));

  // Resident rows: the inputs live in kernel memory (k.allocate), filled once before timing, so the
  // Wasm kernels read and write them in place (no streaming copies). The plain JS loops run on the
  // SAME resident arrays. No call below grows memory, so the views stay valid (checked after).
  const rx = k.allocate(n);
  const ry = k.allocate(n);
  const xr = rx.array;
  const yr = ry.array;
  xr.set(x);
  yr.set(y);
  bench(
    'fakeQuantize int8 (resident, in place)',
    8,
    () => k.fakeQuantize(xr, s, 0, { type: 'int8', out: xr }),
    () => jsFakeQuantize(xr, xr, Math.fround(s), 0, -128, 127),
  );
  xr.set(x);
  bench('cosine (resident)', 8, () => k.cosine(xr, yr), () => jsCosine(xr, yr));
  if (xr.length !== n || yr.length !== n) throw new Error('resident views went stale during the bench');
  rx.free();
  ry.free();
}

const fmt = (v, d = 2) => v.toFixed(d);
const header = ['kernel', 'elements', 'wasm GB/s', 'plain JS GB/s', 'wasm/JS', 'wasm/copy'];
const table = rows.map((r) => [
  r.kernel,
  `${r.n / 1024 / 1024}M`,
  fmt(r.wasm),
  r.copy === undefined ? '-' : fmt(r.js),
  r.copy === undefined ? '-' : fmt(r.wasm / r.js),
  r.copy === undefined ? '1.00' : fmt(r.wasm / r.copy),
]);
emitTable('kernels-throughput', {
  title: `Kernel throughput, median of ${RUNS} runs after ${WARMUP} warm-up runs`,
  header,
  align: 'llrrrr',
  rows: table,
  note:
    "GB/s = bytes of the caller's arrays read + written / median time; fakeQuantize, cosine and copy 8 B per element, " +
    'quantize int8 5 B, minMax and histogram 4 B.',
});

// Adaptive rounding's kernels are compute-bound (d² work per output channel): milliseconds per call
// against the scalar reference, on shapes of PP-OCRv4 layers (statistics of 4096 sampled patches;
// rows = output channels sharing them).
const shapes = [
  { rows: 480, d: 120 },
  { rows: 120, d: 480 },
  { rows: 64, d: 1024 },
];
const adaptive = [];
for (const { rows: outs, d } of shapes) {
  const m = 4096;
  const a = Float32Array.from({ length: m * d }, rand);
  const b = a.map((v) => v + 0.05 * rand());
  const hh = new Float64Array(d * d);
  const gg = new Float64Array(d * d);
  const moments = (kk) => () => kk.crossMoments(a, b, m, d, hh.fill(0), gg.fill(0));
  const cm = [time(moments(k)), time(moments(referenceKernels))];
  k.crossMoments(a, b, m, d, hh.fill(0), gg.fill(0));
  const h = new Float64Array(d * d);
  const g = gg.map((v) => v / m);
  for (let j = 0; j < d; j++) for (let i = j; i < d; i++) h[j * d + i] = h[i * d + j] = hh[j * d + i] / m;
  const w = Float32Array.from({ length: outs * d }, rand);
  const scale = Float64Array.from({ length: outs }, () => 1 / 127);
  const nearest = Int8Array.from(w, (v) => Math.round(v * 127));
  const q = new Int8Array(nearest.length);
  const round = (kk) => () => kk.roundRows(h, g, w, scale, q.set(nearest) ?? q, d, 20);
  const rr = [time(round(k)), time(round(referenceKernels))];
  adaptive.push([`crossMoments`, `${m} × ${d}`, cm[0], cm[1]], [`roundRows`, `${outs} × ${d}`, rr[0], rr[1]]);
}
emitTable('kernels-adaptive-rounding', {
  title: `Adaptive rounding kernels on PP-OCRv4 layer shapes, median of ${RUNS} runs`,
  header: ['kernel', 'shape', 'wasm ms', 'scalar reference ms', 'reference/wasm'],
  align: 'llrrr',
  rows: adaptive.map(([name, shape, tw, tr]) => [name, shape, fmt(tw * 1000, 1), fmt(tr * 1000, 1), fmt(tr / tw, 1)]),
});
