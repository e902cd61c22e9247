// The HTML report in a real Chromium: a report written by the automatic calibration (real
// onnxruntime sessions, the planted-outlier classifier with the default repairs) opens from a file,
// with no network, and its table and both charts render with visible size.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromiumPath } from './harness.mjs';

export async function checkReport({ screenshot } = {}) {
  const aq = await import('../../dist/index.js');
  const model = new Uint8Array(readFileSync(new URL('../fixtures/outlier_mlp.onnx', import.meta.url)));
  let s = 7;
  const rnd = () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
  const batch = () => ({ x: new aq.Tensor('float32', Float32Array.from({ length: 64 * 16 }, rnd), [64, 16]) });
  const evaluator = new aq.FidelityEvaluator([batch(), batch()], { calibrationInputs: [batch(), batch()], batchNum: 2, mode: 'cosine', maxDrop: 0.002 });
  const dir = mkdtempSync(join(tmpdir(), 'aq-report-'));
  const r = await aq.accuracyBasedAutoCalibration(model, evaluator, { config: await aq.createQuantConfig(model, { batchNum: 2 }), repairs: [], savePrefix: join(dir, 'm') });
  const file = join(dir, 'm_report.html');
  if (!r.files.includes(file)) throw new Error(`no report among ${r.files.join(', ')}`);

  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: ['--no-sandbox'] });
  try {
    const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
    const requests = [];
    page.on('request', (req) => { if (!req.url().startsWith('file:')) requests.push(req.url()); });
    await page.goto(pathToFileURL(file).href);
    const seen = await page.evaluate(() => {
      const box = (sel) => {
        const el = document.querySelector(sel);
        const b = el?.getBoundingClientRect();
        return b ? { w: b.width, h: b.height } : null;
      };
      return {
        rows: document.querySelectorAll('#layers tbody tr').length,
        floatRows: [...document.querySelectorAll('#layers tbody tr.f td:first-child')].map((td) => td.textContent),
        bars: document.querySelectorAll('#sensitivity-chart rect.bar').length,
        points: document.querySelectorAll('#history-chart circle').length,
        table: box('#layers'),
        sensitivity: box('#sensitivity-chart'),
        history: box('#history-chart'),
      };
    });
    if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
    const problems = [];
    if (seen.rows !== 8) problems.push(`${seen.rows} table rows, expected 8`);
    if (seen.floatRows.join() !== 'layer3') problems.push(`float rows ${seen.floatRows}`);
    if (seen.bars !== r.ranking.length || seen.bars === 0) problems.push(`${seen.bars} sensitivity bars for ${r.ranking.length} ranked layers`);
    if (seen.points !== r.evaluations) problems.push(`${seen.points} history points for ${r.evaluations} evaluations`);
    for (const k of ['table', 'sensitivity', 'history']) if (!(seen[k]?.w > 100 && seen[k]?.h > 50)) problems.push(`${k} renders at ${JSON.stringify(seen[k])}`);
    if (requests.length) problems.push(`network requests: ${requests.join(', ')}`);
    if (problems.length) throw new Error(problems.join('; '));
  } finally {
    await browser.close();
  }
}
