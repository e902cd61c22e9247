/** The first output of a model on `feeds`, in a session made and released for the call. */
import { createSession, type Feeds } from '../../src/index.js';

export async function firstOutput(
  bytes: Uint8Array,
  feeds: Feeds,
  engine?: 'node',
  graphOptimizationLevel: 'disabled' | 'all' = 'disabled',
): Promise<Float32Array> {
  const s = await createSession(bytes, { graphOptimizationLevel, engine });
  try {
    return (await s.run(feeds))[s.outputNames[0]!]!.data as Float32Array;
  } finally {
    await s.release();
  }
}
