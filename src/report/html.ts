/**
 * The HTML report: one self-contained page (inline CSS and SVG, no script, no network) that shows what
 * a quantization did: a summary with sizes and timings, a table with a row per layer (quantized or
 * why not, bits, observer, weights, sensitivity, output error, repair), a sensitivity chart and, for
 * the automatic calibration, the metric of every evaluation against the limit.
 */
import type { MetricLimit } from '../auto/evaluator.js';
import type { QuantWarning } from '../quant/prepare/coverage.js';
import type { OutputFidelity } from '../quant/export/fidelity.js';
import { describeParity, type Parity } from '../quant/export/parity.js';
import type { LayerQuantConfig, QuantConfig } from '../quant/config/config.js';
import type { LayerError, LayerReport, QuantizeResult } from '../quant/quantize.js';
import { formatBytes } from '../text.js';

export interface HtmlReportOptions {
  /** Shown as the page title (for example the model's file name). */
  title?: string;
  /** Size of the float model in bytes, for the size comparison. */
  floatModelBytes?: number;
}

const esc = (s: unknown) => String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
const num = (v: number | undefined, digits = 5) => (v === undefined || Number.isNaN(v) ? '' : Number.isFinite(v) ? v.toFixed(digits) : v > 0 ? '∞' : '−∞');
/** A score's distance from 1: cosine scores crowd near 1, so six decimals show 1.000000 for most layers. */
const gap = (v: number | undefined) => (v === undefined || !Number.isFinite(v) ? num(v) : (1 - v).toExponential(2));
const bytes = formatBytes;

/**
 * What the page reads of an automatic calibration's result: its shape, not its module, so that the
 * auto flow (which writes this page) and the page do not import each other.
 */
export interface SearchReport {
  layers: LayerReport[];
  config: QuantConfig;
  layerErrors?: LayerError[];
  deployModel?: Uint8Array;
  warnings?: QuantWarning[];
  passed: boolean;
  message: string;
  originalMetric: number;
  quantizedMetric: number;
  limit: MetricLimit;
  evaluations: number;
  ranking: readonly { layer: string; score: number }[];
  history: readonly { fallbackLayers: readonly string[] | null; repaired?: readonly unknown[]; metric: number; ok: boolean }[];
  timings: Readonly<Record<string, number>>;
}

type ReportInput = Pick<QuantizeResult, 'layers' | 'config' | 'layerErrors' | 'deployModel' | 'warnings'> & { outputFidelity?: OutputFidelity[] };

function isAuto(r: ReportInput | SearchReport): r is SearchReport {
  return Array.isArray((r as SearchReport).history);
}

function layerConfig(config: QuantConfig, name: string): LayerQuantConfig | undefined {
  const e = config[name];
  return typeof e === 'object' && e !== null && !Array.isArray(e) ? (e as LayerQuantConfig) : undefined;
}

/** Horizontal bars, one per layer, of 1 − score (the most sensitive first); log scale, since scores crowd near 1. */
function sensitivityChart(ranking: readonly { layer: string; score: number }[]): string {
  const rows = ranking.slice(0, 60);
  if (rows.length === 0) return '';
  const loss = rows.map((r) => Math.max(1e-9, 1 - r.score));
  const [lo, hi] = [Math.log10(Math.min(...loss)), Math.log10(Math.max(...loss))];
  const width = 720;
  const label = 220;
  const bar = 14;
  const h = rows.length * (bar + 4) + 30;
  const scale = (v: number) => (hi - lo < 1e-9 ? width - label - 80 : ((Math.log10(v) - lo) / (hi - lo)) * (width - label - 90) + 10);
  const bars = rows
    .map((r, i) => {
      const y = 20 + i * (bar + 4);
      const w = scale(loss[i]!);
      return `<text x="${label - 6}" y="${y + bar - 3}" text-anchor="end">${esc(r.layer.length > 32 ? `${r.layer.slice(0, 31)}…` : r.layer)}</text>` +
        `<rect class="bar" x="${label}" y="${y}" width="${w.toFixed(1)}" height="${bar}"><title>${esc(r.layer)}: score ${r.score}</title></rect>` +
        `<text x="${label + w + 4}" y="${y + bar - 3}">${(1 - r.score).toExponential(1)}</text>`;
    })
    .join('');
  return `<svg id="sensitivity-chart" role="img" aria-label="Sensitivity per layer" width="${width}" height="${h}" viewBox="0 0 ${width} ${h}">` +
    `<text x="${label}" y="12" class="axis">1 − similarity (log scale), most sensitive first${ranking.length > rows.length ? `; first ${rows.length} of ${ranking.length}` : ''}</text>${bars}</svg>`;
}

/** The metric of every evaluation, in order, with the float metric and the limit as lines. */
function historyChart(r: SearchReport): string {
  const h = r.history;
  if (h.length === 0) return '';
  const metrics = h.map((e) => e.metric);
  const floor = r.limit.maxDrop !== undefined ? r.originalMetric - r.limit.maxDrop : r.limit.maxRelativeDrop !== undefined ? r.originalMetric - r.limit.maxRelativeDrop * Math.abs(r.originalMetric) : undefined;
  const values = [...metrics, r.originalMetric, ...(floor === undefined ? [] : [floor])];
  let [lo, hi] = [Math.min(...values), Math.max(...values)];
  if (hi - lo < 1e-12) [lo, hi] = [lo - 1, hi + 1];
  const pad = (hi - lo) * 0.08;
  [lo, hi] = [lo - pad, hi + pad];
  const [width, height, left, top] = [720, 260, 70, 16];
  const x = (i: number) => left + (h.length === 1 ? 0.5 : i / (h.length - 1)) * (width - left - 20);
  const y = (v: number) => top + (1 - (v - lo) / (hi - lo)) * (height - top - 30);
  const points = h.map((e, i) => `<circle class="${e.ok ? 'ok' : 'bad'}" cx="${x(i).toFixed(1)}" cy="${y(e.metric).toFixed(1)}" r="5"><title>evaluation ${i + 1}: ${esc(e.fallbackLayers === null ? 'float model' : `${e.fallbackLayers.length} layer(s) in float${e.repaired ? `, ${e.repaired.length} repaired` : ''}`)}: metric ${e.metric} (${e.ok ? 'ok' : 'not ok'})</title></circle>`).join('');
  const line = h.map((e, i) => `${x(i).toFixed(1)},${y(e.metric).toFixed(1)}`).join(' ');
  // The float label sits above its line, the limit's below, so that close lines keep readable labels.
  const hline = (v: number, cls: string, text: string, below = false) =>
    `<line class="${cls}" x1="${left}" x2="${width - 20}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}"/>` +
    `<text x="${width - 22}" y="${(y(v) + (below ? 13 : -4)).toFixed(1)}" text-anchor="end" class="axis">${esc(text)}</text>`;
  const ticks = [lo + pad, (lo + hi) / 2, hi - pad].map((v) => `<text x="${left - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end" class="axis">${v.toPrecision(5)}</text>`).join('');
  return `<svg id="history-chart" role="img" aria-label="Metric per evaluation" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">` +
    hline(r.originalMetric, 'float', `float ${r.originalMetric.toPrecision(6)}`) +
    (floor === undefined ? '' : hline(floor, 'limit', `limit ${floor.toPrecision(6)}`, true)) +
    `<polyline class="path" points="${line}"/>${points}${ticks}` +
    `<text x="${left}" y="${height - 8}" class="axis">evaluation 1 … ${h.length} (green: within the limit, red: not)</text></svg>`;
}

function layerTable(layers: readonly LayerReport[], config: QuantConfig, scores: Map<string, number>, errors: Map<string, LayerError>): string {
  const head = ['layer', 'type', 'quantized', 'activation bits', 'observer', 'weights', 'weight bits', '1 − sensitivity score', 'output cosine', 'output SQNR dB', 'repair', 'why not / note'];
  const rows = layers.map((l) => {
    const c = layerConfig(config, l.name);
    const e = errors.get(l.name);
    const note = l.reason ?? l.weightsReason ?? ([l.biasCorrected ? 'bias corrected' : '', l.note ?? ''].filter(Boolean).join('; '));
    return `<tr class="${l.quantized ? 'q' : 'f'}"><td>${esc(l.name)}</td><td>${esc(l.opType)}</td><td>${l.quantized ? 'yes' : 'no'}</td>` +
      `<td>${c?.activation_quant_params && l.quantized ? c.activation_quant_params.num_bits : ''}</td><td>${c?.activation_quant_params && l.quantized ? esc(c.activation_quant_params.act_algo) : ''}</td>` +
      `<td>${esc(l.weights ?? '')}</td><td>${l.quantized && c?.weight_quant_params ? l.weightBits ?? c.weight_quant_params.num_bits : ''}</td><td>${gap(scores.get(l.name))}</td><td>${num(e?.cosine, 6)}</td><td>${num(e?.sqnr, 1)}</td>` +
      `<td>${esc(l.repair ?? '')}</td><td>${esc(note)}</td></tr>`;
  });
  return `<table id="layers"><thead><tr>${head.map((x) => `<th>${x}</th>`).join('')}</tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

/** The report page for a `quantizeModel` or `accuracyBasedAutoCalibration` result. */
export function htmlReport(result: ReportInput | SearchReport, options: HtmlReportOptions = {}): string {
  const auto = isAuto(result) ? result : undefined;
  const title = options.title ?? 'autoquant report';
  const quantized = result.layers.filter((l) => l.quantized).length;
  const scores = new Map((auto?.ranking ?? []).map((r) => [r.layer, r.score]));
  const errors = new Map((result.layerErrors ?? []).map((e) => [e.layer, e]));
  const summary: [string, string][] = [];
  if (auto) {
    summary.push(['result', `${auto.passed ? 'passed' : 'no acceptable model'}: ${auto.message}`]);
    summary.push(['metric', `float ${auto.originalMetric}, quantized ${auto.quantizedMetric}`]);
    summary.push(['limit', auto.limit.maxDrop !== undefined ? `drop ≤ ${auto.limit.maxDrop}` : `relative drop ≤ ${auto.limit.maxRelativeDrop}`]);
    summary.push(['evaluations', String(auto.evaluations)]);
  }
  summary.push(['layers', `${quantized} quantized of ${result.layers.length} listed`]);
  const deploy = result.deployModel?.length;
  summary.push(['sizes', `${options.floatModelBytes !== undefined ? `float ${bytes(options.floatModelBytes)}, ` : ''}deploy ${deploy === undefined ? 'none' : bytes(deploy)}${options.floatModelBytes && deploy ? ` (${((100 * deploy) / options.floatModelBytes).toFixed(1)}%)` : ''}`]);
  for (const f of (result as ReportInput).outputFidelity ?? []) {
    summary.push([`output ${f.output}`, `cosine ${f.cosine.toFixed(5)} to float, SQNR ${Number.isFinite(f.sqnrDb) ? f.sqnrDb.toFixed(1) : '∞'} dB (${f.batches} calibration batch${f.batches === 1 ? '' : 'es'})`]);
  }
  const parity = (result as { parity?: Parity }).parity;
  if (parity) summary.push(['parity', describeParity(parity)]);
  const weightBytes = (result as { weightBytes?: { quantized: number; float: number } }).weightBytes;
  if (weightBytes) {
    const four = result.layers.filter((l) => l.quantized && l.weightBits === 4).length;
    const eight = result.layers.filter((l) => l.quantized && l.weightBits === 8).length;
    summary.push(['weights', `${bytes(weightBytes.quantized)} quantized against ${bytes(weightBytes.float)} float32 (${((100 * weightBytes.quantized) / weightBytes.float).toFixed(1)}%, ${bytes(weightBytes.float - weightBytes.quantized)} saved); block-quantized layers: ${four} at 4 bits, ${eight} at 8`]);
  }
  for (const w of result.warnings ?? []) summary.push(['warning', w.message]);
  if (auto) summary.push(['timings', Object.entries(auto.timings).map(([k, v]) => `${k} ${v.toFixed(2)} s`).join(', ')]);
  const ranking = auto?.ranking.length ? auto.ranking : [...errors.values()].map((e) => ({ layer: e.layer, score: 0.5 + 0.5 * e.cosine })).sort((a, b) => a.score - b.score);
  const sensitivityTitle = auto?.ranking.length ? 'Sensitivity (ranking of the search)' : 'Output error per layer (0.5 + 0.5·cosine, as the ranking scores it)';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}h1{font-size:20px}h2{font-size:16px;margin-top:28px}
table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:3px 6px;text-align:left}th{background:#f4f4f4}
tr.f td{color:#a33}dl{display:grid;grid-template-columns:max-content auto;gap:2px 12px}dt{font-weight:600}
svg text{font-size:11px;fill:#333}svg .axis{fill:#666}.bar{fill:#4a7bd0}.ok{fill:#2a9d4a}.bad{fill:#d03a3a}
.path{fill:none;stroke:#999;stroke-width:1}.float{stroke:#2a9d4a;stroke-dasharray:4 3}.limit{stroke:#d03a3a;stroke-dasharray:4 3}
</style></head><body>
<h1>${esc(title)}</h1>
<dl id="summary">${summary.map(([k, v]) => `<dt>${esc(k)}</dt><dd>${esc(v)}</dd>`).join('')}</dl>
${auto ? `<h2>Search history</h2>${historyChart(auto)}` : ''}
${ranking.length ? `<h2>${sensitivityTitle}</h2>${sensitivityChart(ranking)}` : ''}
<h2>Layers</h2>
${layerTable(result.layers, result.config, scores, errors)}
</body></html>
`;
}
