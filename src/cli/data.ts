/** NumPy inputs for the CLI: the file read, then batched as src/data/feeds.ts says. */
import { feedsFromBytes, type DeclaredInput, type FeedOptions } from '../data/feeds.js';
import type { Feeds } from '../quant/calibrate/calibrate.js';
import { readFileBytes } from '../runtime/io.js';

export type { DeclaredInput, FeedOptions } from '../data/feeds.js';

/** Batches of feeds for a model with `inputs`, from a .npy or .npz file. */
export async function readFeeds(file: string, inputs: readonly (string | DeclaredInput)[], options: FeedOptions = {}): Promise<Feeds[]> {
  return feedsFromBytes(file, await readFileBytes(file), inputs, options);
}
