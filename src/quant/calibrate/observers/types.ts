import type { QuantParams } from '../params.js';

/**
 * Collects statistics of one layer's input activation batch by batch, then turns them into
 * quantization parameters. `bytesHeld` is what the observer keeps between batches: fixed for every
 * observer, whatever the number of batches (calibration reports the total as peakObserverBytes).
 */
export interface ActivationObserver {
  observe(x: Float32Array): void;
  compute(): ActivationResult;
  readonly bytesHeld: number;
}

export interface ActivationResult extends QuantParams {
  /** The clip range the parameters represent. */
  clipMin: number;
  clipMax: number;
  /** Values observed. */
  count: number;
  /** Estimated Σ(fq(x) − x)² / Σx² with these parameters, where the observer can tell (histograms). */
  noise?: number;
}
