/**
 * The app's page: collects the files and settings, hands them to the worker, and shows what comes
 * back. It imports none of the library (the worker does the work), so it loads at once. Files are read
 * from their File objects only when sent, and handed over without a copy.
 */
import { formatBytes } from '../text.js';
import { VERSION } from '../version.js';
import type { FromWorker, ImageSettings, Job, ModelSummary, OutputDownload, Precision, RunSummary, ToWorker } from './protocol.js';

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const ui = {
  form: $<HTMLFormElement>('form'),
  modelFile: $<HTMLInputElement>('model-file'),
  modelInfo: $('model-info'),
  dataFile: $<HTMLInputElement>('data-file'),
  dataInfo: $('data-info'),
  imageSettings: $<HTMLFieldSetElement>('image-settings'),
  width: $<HTMLInputElement>('img-width'),
  height: $<HTMLInputElement>('img-height'),
  channels: $<HTMLSelectElement>('img-channels'),
  layout: $<HTMLSelectElement>('img-layout'),
  mean: $<HTMLInputElement>('img-mean'),
  std: $<HTMLInputElement>('img-std'),
  batchSize: $<HTMLInputElement>('batch-size'),
  target: $<HTMLSelectElement>('target'),
  precision: $<HTMLSelectElement>('precision'),
  allLayers: $<HTMLInputElement>('all-layers'),
  facts: $('facts'),
  labelsRow: $('labels-row'),
  labelsFile: $<HTMLInputElement>('labels-file'),
  maxDrop: $<HTMLInputElement>('max-drop'),
  metricHint: $('metric-hint'),
  run: $<HTMLButtonElement>('run'),
  cancel: $<HTMLButtonElement>('cancel'),
  progress: $<HTMLProgressElement>('progress'),
  status: $('status'),
  chart: document.getElementById('chart') as unknown as SVGSVGElement,
  chartNote: $('chart-note'),
  results: $('results'),
  resultLine: $('result-line'),
  layers: $<HTMLTableElement>('layers'),
};
$('version').textContent = VERSION;

let worker: Worker;
let model: ModelSummary | undefined;
let runningSince: number | undefined;
const scores = new Map<string, number>();
const urls: string[] = [];

function setStatus(text: string, kind: '' | 'error' | 'done' = ''): void {
  ui.status.textContent = text;
  ui.status.className = kind;
}

const metric = () => (document.querySelector<HTMLInputElement>('input[name=metric]:checked')?.value ?? 'fidelity') as 'fidelity' | 'labels';
const isNumpy = (f: File) => /\.(npy|npz)$/i.test(f.name);

function startWorker(): void {
  worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
  worker.addEventListener('message', (e: MessageEvent<FromWorker>) => onMessage(e.data));
  // A worker that dies (out of memory, a crash in the runtime) is replaced; the page keeps working.
  worker.addEventListener('error', (e) => {
    e.preventDefault();
    const running = runningSince !== undefined;
    finishRun();
    startWorker();
    setStatus(`${running ? 'the run stopped' : 'the worker stopped'}: ${e.message || 'the browser ended the worker, most likely out of memory'}. Nothing was lost on this page; try again, with a smaller model or fewer calibration rows.`, 'error');
  });
}

function send(message: ToWorker, transfer: Transferable[] = []): void {
  worker.postMessage(message, transfer);
}

function refreshRunButton(): void {
  const ready = model !== undefined && (ui.dataFile.files?.length ?? 0) > 0 && (metric() === 'fidelity' || (ui.labelsFile.files?.length ?? 0) > 0);
  ui.run.disabled = !ready || runningSince !== undefined;
}

async function inspect(): Promise<void> {
  const file = ui.modelFile.files?.[0];
  model = undefined;
  refreshRunButton();
  if (!file) return;
  ui.modelInfo.className = 'info';
  ui.modelInfo.textContent = `reading ${file.name} (${formatBytes(file.size)})…`;
  const bytes = await file.arrayBuffer();
  send({ type: 'inspect', model: { name: file.name, bytes }, target: ui.target.value as Job['target'], allLayers: ui.allLayers.checked }, [bytes]);
}

function describeModel(m: ModelSummary): string {
  const inputs = m.inputs.map((i) => `${i.name} ${i.type ?? ''}[${(i.dims ?? []).map((d) => d ?? '?').join(', ')}]`).join('; ');
  return `${m.name}: ${formatBytes(m.bytes)}, ${m.nodes} nodes; ${m.layers} quantizable layers (${m.enabled} on by default for this target); input ${inputs}`;
}

function showImageSettings(s: ImageSettings | undefined): void {
  if (!s) return;
  ui.width.value = String(s.width);
  ui.height.value = String(s.height);
  ui.channels.value = String(s.channels);
  ui.layout.value = s.layout;
  ui.mean.value = s.mean.join(', ');
  ui.std.value = s.std.join(', ');
}

function readImageSettings(): ImageSettings {
  const list = (v: string) => v.split(/[\s,]+/).filter(Boolean).map(Number);
  return {
    width: Number(ui.width.value),
    height: Number(ui.height.value),
    channels: Number(ui.channels.value) as 1 | 3,
    layout: ui.layout.value as ImageSettings['layout'],
    mean: list(ui.mean.value),
    std: list(ui.std.value),
  };
}

function onDataChosen(): void {
  const files = [...(ui.dataFile.files ?? [])];
  const images = files.length > 0 && !files.some(isNumpy);
  ui.imageSettings.hidden = !images;
  ui.dataInfo.textContent = files.length === 0 ? '' : images ? `${files.length} image${files.length === 1 ? '' : 's'}` : `${files.map((f) => `${f.name} (${formatBytes(f.size)})`).join(', ')}`;
  $('data-drop').classList.toggle('filled', files.length > 0);
  dropText('data-drop', files.length ? `${files.length === 1 ? files[0]!.name : `${files.length} files`} · drop others to replace` : undefined);
  refreshRunButton();
}

function onTargetChanged(): void {
  const weightOnly = ui.target.value !== 'cpu';
  for (const o of ui.precision.options) o.disabled = o.value !== '8' && !weightOnly;
  if (!weightOnly) ui.precision.value = '8';
  void inspect();
}

function onMetricChanged(): void {
  const labels = metric() === 'labels';
  ui.labelsRow.hidden = !labels;
  ui.metricHint.textContent = labels
    ? 'How much top-1 accuracy (0–1) the quantized model may lose against the float model on this data.'
    : "The share of rows whose top class (or the output's cosine) may differ from the float model's.";
  refreshRunButton();
}

async function startRun(): Promise<void> {
  const modelFile = ui.modelFile.files?.[0];
  const dataFiles = [...(ui.dataFile.files ?? [])];
  if (!modelFile || dataFiles.length === 0) return;
  resetResults();
  runningSince = performance.now();
  ui.run.disabled = true;
  ui.cancel.disabled = false;
  setStatus('reading the files…');
  // On a phone the progress is below the form: bring it into view.
  if (matchMedia('(max-width: 820px)').matches) ui.status.scrollIntoView({ block: 'center', behavior: 'smooth' });
  try {
    const named = async (f: File) => ({ name: f.name, bytes: await f.arrayBuffer() });
    const labelsFile = metric() === 'labels' ? ui.labelsFile.files?.[0] : undefined;
    const job: Job = {
      model: await named(modelFile),
      data: await Promise.all(dataFiles.map(named)),
      ...(!dataFiles.some(isNumpy) ? { images: readImageSettings() } : {}),
      ...(labelsFile ? { labels: await named(labelsFile) } : {}),
      maxDrop: Number(ui.maxDrop.value),
      batchSize: Number(ui.batchSize.value),
      target: ui.target.value as Job['target'],
      precision: ui.precision.value as Precision,
      allLayers: ui.allLayers.checked,
    };
    const transfer = [job.model.bytes, ...job.data.map((d) => d.bytes), ...(job.labels ? [job.labels.bytes] : [])];
    send({ type: 'run', job }, transfer);
  } catch (e) {
    finishRun();
    setStatus(`could not read the files: ${(e as Error)?.message ?? e}`, 'error');
  }
}

function finishRun(): void {
  runningSince = undefined;
  ui.cancel.disabled = true;
  refreshRunButton();
}

/**
 * Cancel ends the worker: onnxruntime's calls inside it run to completion without yielding to its
 * message queue, so a polite request would be read only after the run. The worker holds nothing
 * else, and a fresh one is ready at once.
 */
function cancelRun(): void {
  if (runningSince === undefined) return;
  worker.terminate();
  startWorker();
  finishRun();
  ui.progress.value = 0;
  setStatus('cancelled');
}

function resetResults(): void {
  for (const u of urls.splice(0)) URL.revokeObjectURL(u);
  scores.clear();
  drawChart();
  ui.chartNote.textContent = '';
  ui.results.hidden = true;
  ui.progress.value = 0;
}

const SVG = 'http://www.w3.org/2000/svg';
/** Bars in the order the layers were scored; height by log10(1 − cosine) from 1e-8 to 1. */
function drawChart(fallback: ReadonlySet<string> = new Set(), repaired: ReadonlySet<string> = new Set()): void {
  ui.chart.replaceChildren();
  const entries = [...scores];
  const w = 300;
  const h = 120;
  const bw = entries.length ? w / entries.length : w;
  for (const [i, [layer, score]] of entries.entries()) {
    const distance = Math.max(1e-8, Math.min(1, 1 - score));
    const bh = Math.max(1, ((Math.log10(distance) + 8) / 8) * h);
    const rect = document.createElementNS(SVG, 'rect');
    rect.setAttribute('x', String(i * bw + bw * 0.1));
    rect.setAttribute('y', String(h - bh));
    rect.setAttribute('width', String(Math.max(0.5, bw * 0.8)));
    rect.setAttribute('height', String(bh));
    rect.setAttribute('class', `bar${fallback.has(layer) ? ' float' : repaired.has(layer) ? ' repaired' : ''}`);
    const title = document.createElementNS(SVG, 'title');
    title.textContent = `${layer}: 1 − cosine ${(1 - score).toExponential(2)}${fallback.has(layer) ? ' (kept float)' : repaired.has(layer) ? ' (repaired)' : ''}`;
    rect.append(title);
    ui.chart.append(rect);
  }
  ui.chart.setAttribute('aria-label', entries.length ? `layer sensitivity: ${entries.length} layers ranked` : 'layer sensitivity: no layer ranked yet');
}

function showResult(summary: RunSummary, files: OutputDownload[]): void {
  const floatLayers = summary.layers.filter((l) => !l.quantized);
  const fmt = (v: number) => (Math.abs(v) < 10 ? v.toFixed(4) : v.toPrecision(5));
  ui.resultLine.textContent = `${summary.passed ? 'Passed' : 'No model within the limit'}: ${summary.message}`;
  ui.resultLine.className = summary.passed ? '' : 'bad';
  const facts: [string, string][] = [
    [summary.metricName, `float ${fmt(summary.originalMetric)}, quantized ${fmt(summary.quantizedMetric)}`],
    ['layers', `${summary.layers.length - floatLayers.length} of ${summary.layers.length} quantized${floatLayers.length ? `; float: ${floatLayers.map((l) => l.name).join(', ')}` : ''}`],
    ...(summary.deployBytes ? [['deploy model', `${formatBytes(summary.deployBytes)}, ${((100 * summary.deployBytes) / summary.modelBytes).toFixed(0)}% of the float model's ${formatBytes(summary.modelBytes)}`] as [string, string]] : []),
    ['search', `${summary.evaluations} evaluations on ${summary.backend}, ${summary.seconds.toFixed(1)} s`],
  ];
  ui.facts.replaceChildren(
    ...facts.flatMap(([k, v]) => {
      const dt = document.createElement('dt');
      dt.textContent = k;
      const dd = document.createElement('dd');
      dd.textContent = v;
      return [dt, dd];
    }),
  );
  for (const a of document.querySelectorAll<HTMLAnchorElement>('#downloads a')) {
    const f = files.find((x) => x.kind === a.dataset.kind);
    if (f) {
      const type = f.file.endsWith('.html') ? 'text/html' : f.file.endsWith('.json') ? 'application/json' : 'application/octet-stream';
      const url = URL.createObjectURL(new Blob([f.data], { type }));
      urls.push(url);
      a.href = url;
      a.download = f.file;
      a.title = f.file;
      a.removeAttribute('aria-disabled');
      a.removeAttribute('tabindex');
    } else {
      a.removeAttribute('href');
      a.setAttribute('aria-disabled', 'true');
      a.tabIndex = -1;
    }
  }
  const body = ui.layers.tBodies[0]!;
  body.replaceChildren(
    ...summary.layers.map((l) => {
      const tr = document.createElement('tr');
      for (const [text, cls] of [[l.name, ''], [l.opType, ''], [l.quantized ? `quantized${l.detail ? `: ${l.detail}` : ''}` : `float${l.detail ? `: ${l.detail}` : ''}`, l.quantized ? '' : 'float']]) {
        const td = document.createElement('td');
        td.textContent = text!;
        if (cls) td.className = cls;
        tr.append(td);
      }
      return tr;
    }),
  );
  ui.results.hidden = false;
  drawChart(new Set(floatLayers.map((l) => l.name)), new Set(summary.layers.filter((l) => l.detail.includes('repaired')).map((l) => l.name)));
}

function onMessage(m: FromWorker): void {
  switch (m.type) {
    case 'inspected':
      model = m.summary;
      ui.modelInfo.className = 'info';
      ui.modelInfo.textContent = describeModel(m.summary);
      $('model-drop').classList.add('filled');
      dropText('model-drop', `${m.summary.name} · drop another model to replace it`);
      showImageSettings(m.summary.images);
      if (runningSince === undefined) setStatus('Ready: choose the calibration data, then Run.');
      refreshRunButton();
      break;
    case 'progress':
      ui.progress.value = m.fraction;
      setStatus(`${m.phase}: ${m.message}`);
      break;
    case 'score':
      scores.set(m.layer, m.score);
      drawChart();
      ui.chartNote.textContent = `${m.done} of ${m.total} layers ranked`;
      break;
    case 'ranking':
      if (scores.size === 0) for (const s of m.scores) scores.set(s.layer, s.score);
      break;
    case 'done':
      finishRun();
      ui.progress.value = 1;
      showResult(m.summary, m.files);
      setStatus(m.summary.passed ? `done: ${m.summary.layers.filter((l) => l.quantized).length} of ${m.summary.layers.length} layers quantized, within the limit` : `finished without a model: ${m.summary.message}`, m.summary.passed ? 'done' : 'error');
      if (scores.size === 0) ui.chartNote.textContent = 'Every layer passed in int8 at once: no ranking was needed.';
      break;
    case 'error':
      if (m.during === 'inspect') {
        model = undefined;
        ui.modelInfo.className = 'info bad';
        ui.modelInfo.textContent = m.message;
        $('model-drop').classList.remove('filled');
        dropText('model-drop');
        setStatus(`error: ${m.message}`, 'error');
        refreshRunButton();
      } else {
        finishRun();
        setStatus(`error: ${m.message}`, 'error');
      }
      break;
  }
}

const dropTexts = new Map<string, string>();
/** A drop zone's words: the chosen file once there is one, its invitation otherwise. */
function dropText(zone: string, text?: string): void {
  const el = $(zone).querySelector('.drop-text')!;
  if (!dropTexts.has(zone)) dropTexts.set(zone, el.innerHTML);
  if (text === undefined) el.innerHTML = dropTexts.get(zone)!;
  else el.textContent = text;
}

/** Drop zones hand dropped files to their input, as choosing them would. */
function dropZone(zone: HTMLElement, input: HTMLInputElement): void {
  zone.addEventListener('dragover', (e) => {
    e.preventDefault();
    zone.classList.add('over');
  });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    zone.classList.remove('over');
    if (!e.dataTransfer?.files.length) return;
    input.files = e.dataTransfer.files;
    input.dispatchEvent(new Event('change', { bubbles: true }));
  });
}

startWorker();
dropZone($('model-drop'), ui.modelFile);
dropZone($('data-drop'), ui.dataFile);
ui.modelFile.addEventListener('change', () => void inspect());
ui.dataFile.addEventListener('change', onDataChosen);
ui.labelsFile.addEventListener('change', refreshRunButton);
ui.target.addEventListener('change', onTargetChanged);
ui.allLayers.addEventListener('change', () => void inspect());
for (const r of document.querySelectorAll('input[name=metric]')) r.addEventListener('change', onMetricChanged);
ui.form.addEventListener('submit', (e) => {
  e.preventDefault();
  void startRun();
});
ui.cancel.addEventListener('click', cancelRun);
onTargetChanged();
