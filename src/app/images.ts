/**
 * Images as a model input, decoded in the worker by the browser's own codecs (createImageBitmap and
 * OffscreenCanvas): PNG, JPEG, WebP, whatever the browser reads. Batches are built one at a time, so
 * only the decoded floats of the whole set are held, never the canvases.
 */
import { UsageError } from '../errors.js';
import type { Feeds } from '../quant/calibrate/calibrate.js';
import { Tensor } from '../runtime/ort.js';
import type { DeclaredInput } from '../onnx/inputs.js';
import type { ImageSettings, NamedBytes } from './protocol.js';

/** Image settings that fit an input declared [N, C, H, W] or [N, H, W, C] (C 1 or 3); ImageNet's mean and std for RGB. */
export function suggestImageSettings(input: Pick<DeclaredInput, 'dims'>): ImageSettings | undefined {
  const d = input.dims;
  if (!d || d.length !== 4) return undefined;
  const fixed = (v: number | string | undefined) => (typeof v === 'number' && v > 0 ? v : undefined);
  const nchw = d[1] === 1 || d[1] === 3;
  const c = (nchw ? d[1] : d[3]) as number | undefined;
  if (c !== 1 && c !== 3) return undefined;
  const height = fixed(nchw ? d[2] : d[1]) ?? 224;
  const width = fixed(nchw ? d[3] : d[2]) ?? 224;
  return c === 1
    ? { width, height, channels: 1, layout: nchw ? 'NCHW' : 'NHWC', mean: [0], std: [1] }
    : { width, height, channels: 3, layout: nchw ? 'NCHW' : 'NHWC', mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };
}

function checkSettings(s: ImageSettings): void {
  const bad = (what: string) => new UsageError(`image settings: ${what}`);
  if (!Number.isInteger(s.width) || !Number.isInteger(s.height) || s.width < 1 || s.height < 1 || s.width * s.height > 4096 * 4096) throw bad(`width and height must be whole numbers from 1 to 4096, got ${s.width} × ${s.height}`);
  if (s.mean.length !== s.channels || s.std.length !== s.channels) throw bad(`give ${s.channels} mean and ${s.channels} std value(s), one per channel`);
  if (s.std.some((v) => !(v > 0)) || s.mean.some((v) => !Number.isFinite(v))) throw bad('every std must be > 0 and every mean a number');
}

/** One image's pixels, resized, as floats in `s`'s layout for one row of the batch. */
async function decode(file: NamedBytes, s: ImageSettings, into: Float32Array, offset: number): Promise<void> {
  let bitmap: ImageBitmap;
  try {
    bitmap = await createImageBitmap(new Blob([file.bytes]), { resizeWidth: s.width, resizeHeight: s.height, resizeQuality: 'high' });
  } catch {
    throw new UsageError(`${file.name}: not an image this browser can decode (use PNG, JPEG or WebP; NumPy data goes in a .npy or .npz)`);
  }
  const canvas = new OffscreenCanvas(s.width, s.height);
  const ctx = canvas.getContext('2d');
  if (!ctx) throw new UsageError(`${file.name}: this browser gives no 2-D canvas to read the image's pixels`);
  ctx.drawImage(bitmap, 0, 0);
  bitmap.close();
  const px = ctx.getImageData(0, 0, s.width, s.height).data;
  const plane = s.width * s.height;
  for (let i = 0; i < plane; i++) {
    const r = px[4 * i]! / 255;
    const g = px[4 * i + 1]! / 255;
    const b = px[4 * i + 2]! / 255;
    if (s.channels === 1) {
      into[offset + i] = (0.299 * r + 0.587 * g + 0.114 * b - s.mean[0]!) / s.std[0]!;
      continue;
    }
    const rgb = [r, g, b];
    for (let c = 0; c < 3; c++) {
      const v = (rgb[c]! - s.mean[c]!) / s.std[c]!;
      into[s.layout === 'NCHW' ? offset + c * plane + i : offset + 3 * i + c] = v;
    }
  }
}

/** Batches of `batchSize` images (in the order given) for the model's one image input. */
export async function imageFeeds(files: readonly NamedBytes[], input: DeclaredInput, s: ImageSettings, batchSize: number): Promise<Feeds[]> {
  checkSettings(s);
  if (input.type !== undefined && input.type !== 'float32') throw new UsageError(`input '${input.name}' is ${input.type}; images are fed as float32`);
  const row = s.width * s.height * s.channels;
  const batches: Feeds[] = [];
  for (let start = 0; start < files.length; start += batchSize) {
    const group = files.slice(start, start + batchSize);
    const data = new Float32Array(group.length * row);
    for (const [i, f] of group.entries()) await decode(f, s, data, i * row);
    const dims = s.layout === 'NCHW' ? [group.length, s.channels, s.height, s.width] : [group.length, s.height, s.width, s.channels];
    batches.push({ [input.name]: new Tensor('float32', data, dims) });
  }
  return batches;
}
