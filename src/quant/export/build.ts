/**
 * From a plan (layers with their factors) to the fake-quant and deploy models.
 */
import { CalibrationError, QuantConfigError } from '../../errors.js';
import { opsetVersion } from '../../onnx/graph.js';
import { constantAt } from '../../onnx/scope.js';
import { encodeModel } from '../../onnx/model.js';
import { upgradeOpset } from '../../onnx/opset.js';
import { readTensorAsFloat32, tensorDims } from '../../onnx/tensor.js';
import { type ModelProto } from '../../onnx/types.js';
import { quoteName } from '../../text.js';
import { type QuantRecord } from '../config/record.js';
import { type OutputPlacement, placeOutputs } from '../decide/outputs.js';
import { applyRounding, decodeRounding } from '../decide/rounding.js';
import { clone } from '../prepare/prepare.js';
import { type LayerInfo } from '../prepare/registry.js';
import { type QuantizationSession, layerConfig } from '../types.js';
import { planWeightOnly, type WeightOnlyQuantization, writeDeployWeightOnly, writeFakeQuantWeightOnly } from './weight-only.js';
import { replaceAttributeClips } from './portable.js';
import { type LayerQuantization, requiredDeployOpset, writeDeploy, writeFakeQuant } from './rewrite.js';
import type { Int8WeightType } from './int8-kernels.js';
import { biasScaleFloor, dequantizeWeight, quantizeBias, quantizeWeight } from './weights.js';

/** The quantization of each layer from the record's activation factors and the layer's weights. */
export function planLayers(q: QuantizationSession, layers: readonly LayerInfo[], record: QuantRecord): LayerQuantization[] {
  return layers.map((l) => {
    const rec = record.layers[l.name];
    if (!rec) throw new CalibrationError(`layer '${l.name}' has no calibration result`);
    const lq: LayerQuantization = { layer: l, activation: { scale: rec.scale_d, zeroPoint: rec.offset_d, bits: rec.num_bits_d } };
    if (l.second) {
      if (rec.scale_d2 === undefined || rec.offset_d2 === undefined) throw new CalibrationError(`layer '${l.name}' has no calibration result for its second input '${l.second}' (scale_d2)`);
      lq.second = { scale: rec.scale_d2, zeroPoint: rec.offset_d2, bits: rec.num_bits_d };
    }
    // Output factors: calibrated for this layer. An output read by a quantized layer takes that
    // reader's factors where the plan has the reader (see decide/outputs.ts); a plan without it (a layer
    // fallen back to float) must leave the output float, or the fallen-back layer's input would still
    // be rounded on its int8 grid.
    if (rec.output_quant === false) lq.keepOutputFloat = true;
    else if (rec.scale_o !== undefined && rec.offset_o !== undefined) lq.output = { scale: rec.scale_o, zeroPoint: rec.offset_o, bits: 8 };
    if (l.weight) {
      const w = readTensorAsFloat32(constantAt(q.work.graph!, l.scope, l.weight.name)!);
      const axis = layerConfig(q.config, l.name)?.weight_quant_params?.channel_wise ? l.weight.channelAxis : -1;
      const channels = axis < 0 ? 1 : l.weight.dims[axis]!;
      const bias = l.bias ? constantAt(q.work.graph!, l.scope, l.bias)! : undefined;
      const biasDims = bias ? tensorDims(bias) : [];
      // A per-channel bias scale needs the channels on the bias's last axis; otherwise the bias stays float.
      let values: Float32Array | undefined;
      if (bias && (channels === 1 || biasDims[biasDims.length - 1] === channels)) {
        values = readTensorAsFloat32(bias);
        const shift = rec.bias_shift;
        // The shift is per output channel, which a bias carries on its last axis.
        if (shift?.length) values = values.map((v, i) => v - shift[i % shift.length]!);
      }
      lq.weight = quantizeWeight(q.kernels, w, l.weight.dims, axis, values && biasScaleFloor(values, channels, rec.scale_d));
      if (rec.round_w) {
        const bits = decodeRounding(rec.round_w);
        const chosen = bits ? applyRounding(w, lq.weight.q, l.weight.dims, axis, lq.weight.scale, bits) : 'is not base64';
        if (typeof chosen === 'string') throw new QuantConfigError([`layer ${quoteName(l.name)}: round_w ${chosen}`], 'the record');
        lq.weight = { ...lq.weight, q: chosen, fq: dequantizeWeight(q.kernels, chosen, lq.weight.scale, axis, l.weight.dims) };
      }
      rec.scale_w = Array.from(lq.weight.scale);
      rec.offset_w = rec.scale_w.map(() => 0);
      if (values) lq.bias = quantizeBias(values, biasDims, rec.scale_d, lq.weight.scale);
    }
    return lq;
  });
}
/** Which layer outputs get quantized for `plan` (the same in both model forms; see decide/outputs.ts). */
export function outputPlacement(q: QuantizationSession, plan: readonly LayerQuantization[]): OutputPlacement {
  const opset = Math.max(opsetVersion(q.work) ?? 1, plan.length ? requiredDeployOpset(plan) : 0);
  return placeOutputs(q.work.graph!, plan, q.config.quantize_outputs !== false, opset >= 13);
}
/**
 * The fake-quant model (standard ops) for a plan. The model's own attribute-form Clip nodes are
 * rewritten too (exactly, see portable.ts), so the whole graph stays on the GPU in onnxruntime-web;
 * `gpuRewrites` names them.
 */
export function fakeQuantModelProto(q: QuantizationSession, plan: readonly LayerQuantization[], weightOnly: readonly WeightOnlyQuantization[] = planWeightOnly(q)): { model: ModelProto; gpuRewrites: string[] } {
  const fake = clone(q.work);
  writeFakeQuant(fake, plan, outputPlacement(q, plan).outputs);
  writeFakeQuantWeightOnly(fake, weightOnly);
  return { model: fake, gpuRewrites: replaceAttributeClips(fake) };
}
/**
 * The deployable QDQ model for a plan, with the opset raised as far as the plan needs; `weightType`
 * is what the integer kernels' weights are stored as (see int8-kernels.ts).
 */
export function buildDeployModel(q: QuantizationSession, plan: readonly LayerQuantization[], weightOnly: readonly WeightOnlyQuantization[] = planWeightOnly(q), weightType: Int8WeightType = 'int8'): Uint8Array {
  const deploy = clone(q.work);
  const need = requiredDeployOpset(plan);
  if (plan.length > 0 && (opsetVersion(deploy) ?? 1) < need) upgradeOpset(deploy, need);
  writeDeploy(deploy, plan, outputPlacement(q, plan), weightType);
  writeDeployWeightOnly(deploy, weightOnly);
  return encodeModel(deploy);
}
