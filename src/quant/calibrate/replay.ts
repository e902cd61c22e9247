/**
 * A calibration callback asked for its batches once. The automatic search passes over the
 * calibration batches several times (calibration, the model-output ranking, 16-bit activations,
 * each repair's calibration, the layer errors); a user's callback may read files or decode images
 * for each batch, so its first call's feeds are copied and every later pass replays the copies.
 * The copies are bounded: past `budgetBytes` they are dropped and the callback is called again for
 * each pass. Either way the callback must be deterministic (the same feeds on every call), since
 * every pass has to see the batches calibration saw.
 */
import { Tensor, type OrtTensor } from '../../runtime/ort.js';
import type { CalibrationCallback, CalibrationSession, Feeds } from './calibrate.js';

/** Default bound on the copied feeds of a replayed callback. */
export const REPLAY_BYTES = 256 * 2 ** 20;

export interface ReplayedCallback {
  /** Use in place of the user's callback. */
  callback: CalibrationCallback;
  /** How many times the user's callback has been called. */
  readonly calls: number;
  /** Whether later passes replay copies (false once the copies passed the budget). */
  readonly replaying: boolean;
}

function copyTensor(t: OrtTensor): OrtTensor {
  // A callback may refill the same buffer for its next batch; the copy keeps this batch's values.
  const data = t.data as ArrayLike<unknown> & { slice(): typeof t.data };
  return new Tensor(t.type as 'float32', data.slice() as Float32Array, t.dims.slice());
}

/**
 * `user` behind a callback that records, on its first call, the first `batchNum` feeds it runs,
 * and replays them on later calls while they fit `budgetBytes`.
 */
export function replayedCallback(user: CalibrationCallback, batchNum: number, budgetBytes = REPLAY_BYTES): ReplayedCallback {
  let calls = 0;
  let copies: Feeds[] | undefined;
  let overBudget = false;
  const state = {
    get calls() {
      return calls;
    },
    get replaying() {
      return !overBudget;
    },
    callback: async (session: CalibrationSession): Promise<void> => {
      if (copies) {
        for (const feeds of copies) await session.run(feeds);
        return;
      }
      calls++;
      const taken: Feeds[] = [];
      let bytes = 0;
      const recording: CalibrationSession = {
        inputNames: session.inputNames,
        outputNames: session.outputNames,
        run: async (feeds: Feeds) => {
          if (!overBudget && taken.length < batchNum) {
            const copy: Feeds = {};
            for (const [name, t] of Object.entries(feeds)) {
              copy[name] = copyTensor(t);
              bytes += (t.data as { byteLength?: number }).byteLength ?? 0;
            }
            if (bytes > budgetBytes) {
              overBudget = true;
              taken.length = 0;
            } else taken.push(copy);
          }
          return session.run(feeds);
        },
      };
      await user(recording);
      // Only a whole first pass is replayed; one that fell short fails in the caller anyway.
      if (!overBudget && taken.length === batchNum) copies = taken;
    },
  };
  return state;
}
