// Task metrics the quality benchmarks compare float and quantized outputs with.

/** Per row of [rows, classes] outputs, 1 where both argmaxes agree, else 0. */
export function rowAgreement(f, q, classes) {
  const rows = f.length / classes;
  const same = new Uint8Array(rows);
  for (let r = 0; r < rows; r++) {
    let a = 0;
    let b = 0;
    for (let c = 1; c < classes; c++) {
      if (f[r * classes + c] > f[r * classes + a]) a = c;
      if (q[r * classes + c] > q[r * classes + b]) b = c;
    }
    same[r] = a === b ? 1 : 0;
  }
  return same;
}

/** Row-wise argmax agreement over [rows, classes] outputs. */
export function top1(f, q, classes) {
  const same = rowAgreement(f, q, classes);
  return same.reduce((s, v) => s + v, 0) / same.length;
}

/** IoU of the text masks (probability > 0.3, PaddleOCR's DB threshold) of two detector outputs. */
export function textMaskIoU(f, q) {
  let inter = 0;
  let union = 0;
  for (let i = 0; i < f.length; i++) {
    const a = f[i] > 0.3;
    const b = q[i] > 0.3;
    if (a && b) inter++;
    if (a || b) union++;
  }
  return union ? inter / union : 1;
}

/** A recognizer's output [n, steps, classes] read as n strings (greedy CTC: argmax per step, repeats merged, blank 0 dropped). */
export function ctcStrings(data, dims) {
  const [n, t, k] = dims.map(Number);
  const lines = [];
  for (let i = 0; i < n; i++) {
    const text = [];
    let prev = 0;
    for (let s = 0; s < t; s++) {
      let best = 0;
      for (let j = 1; j < k; j++) if (data[(i * t + s) * k + j] > data[(i * t + s) * k + best]) best = j;
      if (best !== 0 && best !== prev) text.push(best);
      prev = best;
    }
    lines.push(text.join(','));
  }
  return lines;
}
