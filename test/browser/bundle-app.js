// A browser app as a user would write it: it imports the package and nothing else, and is bundled
// by esbuild for the browser with no externals (see run.mjs, which points 'autoquant' at the package's
// default entry or at 'autoquant/wasm'). onnxruntime-web's wasm files are not part of a bundle; the app
// says where they are served (env.wasm.wasmPaths), as the README shows.
import { createQuantConfig, createSession, getOrt, quantizeModel, Tensor } from 'autoquant';

async function main() {
  getOrt().env.wasm.wasmPaths = '/node_modules/onnxruntime-web/dist/';
  const model = new Uint8Array(await (await fetch('/test/fixtures/mnist_cnn.onnx')).arrayBuffer());
  const x = Float32Array.from({ length: 4 * 784 }, (_, i) => ((i * 7919) % 255) / 255);
  const feeds = { input: new Tensor('float32', x, [4, 1, 28, 28]) };
  const result = await quantizeModel(model, await createQuantConfig(model, { skipSlowLayers: false }), [feeds]);
  const session = await createSession(result.deployModel);
  const out = await session.run(feeds);
  await session.release();
  return { quantized: result.layers.filter((l) => l.quantized).length, logits: out[session.outputNames[0]].dims };
}

main().then(
  (r) => (window.__bundleResult = { ok: true, ...r }),
  (e) => (window.__bundleResult = { ok: false, error: String(e?.stack ?? e) }),
);
