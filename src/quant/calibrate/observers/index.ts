import type { Kernels } from '../../../kernels/types.js';
import { HFMG_DEFAULTS, IFMR_DEFAULTS, PERCENTILE_DEFAULTS, type ActivationQuantParams } from '../../config/config.js';
import { HfmgObserver } from './hfmg.js';
import { IfmrObserver } from './ifmr.js';
import { MinMaxObserver } from './minmax.js';
import { PercentileObserver } from './percentile.js';
import type { ActivationObserver } from './types.js';

export type { ActivationObserver, ActivationResult } from './types.js';

/** The observer a layer's activation config asks for. */
export function createObserver(k: Kernels, p: ActivationQuantParams, asymmetricDefault: boolean): ActivationObserver {
  const asymmetric = p.asymmetric ?? asymmetricDefault;
  switch (p.act_algo) {
    case 'ifmr':
      return new IfmrObserver(k, {
        bits: p.num_bits,
        asymmetric,
        minPercentile: p.min_percentile ?? IFMR_DEFAULTS.min_percentile,
        maxPercentile: p.max_percentile ?? IFMR_DEFAULTS.max_percentile,
        searchRange: p.search_range ?? IFMR_DEFAULTS.search_range,
        searchStep: p.search_step ?? IFMR_DEFAULTS.search_step,
      });
    case 'hfmg':
      return new HfmgObserver(k, p.num_bits, asymmetric, p.num_of_bins ?? HFMG_DEFAULTS.num_of_bins);
    case 'percentile':
      return new PercentileObserver(
        k, p.num_bits, asymmetric,
        p.min_percentile ?? PERCENTILE_DEFAULTS.min_percentile,
        p.max_percentile ?? PERCENTILE_DEFAULTS.max_percentile,
      );
    case 'minmax':
      return new MinMaxObserver(k, p.num_bits, asymmetric);
  }
}
