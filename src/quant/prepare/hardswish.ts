/**
 * Writes hard-swish, x · relu6(x + 3) / 6, as the single HardSwish operator (opset 14) in deploy
 * models. Exported models spell it as four elementwise ops (Add, Clip, Div, Mul) or as
 * HardSigmoid then Mul; either way x has two readers, and ONNX Runtime fuses a quantized layer
 * into an integer kernel only when its Q output has one reader. One op is also one pass over the
 * tensor instead of four. The result equals the original up to float rounding (about one ulp).
 */
import { consumerMap, findAttribute, getConstant, opsetVersion } from '../../onnx/graph.js';
import { readTensorAsFloat32 } from '../../onnx/tensor.js';
import { onnx, type GraphProto, type ModelProto, type NodeProto } from '../../onnx/types.js';

export const HARD_SWISH_OPSET = 14;

const isDefault = (n: NodeProto) => !n.domain || n.domain === 'ai.onnx';

function scalarConstant(graph: GraphProto, name: string | undefined): number | undefined {
  const t = name ? getConstant(graph, name) : undefined;
  if (!t) return undefined;
  const v = readTensorAsFloat32(t);
  return v.length === 1 ? v[0] : undefined;
}

const near = (a: number | undefined, b: number) => a !== undefined && Math.abs(a - b) <= 1e-6 * Math.max(1, Math.abs(b));

/**
 * Rewrites every hard-swish pattern of the main graph as HardSwish, in place, and returns the
 * output names it replaced. The model must be at opset 14 or later; `dryRun` only lists them.
 */
export function fuseHardSwish(model: ModelProto, { dryRun = false } = {}): string[] {
  const graph = model.graph;
  if (!graph || (!dryRun && (opsetVersion(model) ?? 1) < HARD_SWISH_OPSET)) return [];
  const readers = consumerMap(graph);
  const graphOutputs = new Set((graph.output ?? []).map((o) => o.name));
  const producer = new Map<string, NodeProto>();
  for (const n of graph.node ?? []) for (const o of n.output ?? []) if (o) producer.set(o, n);
  /** The node producing `name` when it has `op` type and `name` has no other reader. */
  const only = (name: string | undefined, ...ops: string[]): NodeProto | undefined => {
    const n = name ? producer.get(name) : undefined;
    if (!n || !isDefault(n) || !ops.includes(n.opType ?? '') || graphOutputs.has(name!) || (readers.get(name!) ?? []).length !== 1) return undefined;
    return n;
  };
  const other = (n: NodeProto, x: string) => (n.input![0] === x ? n.input![1] : n.input![0]);
  const removed = new Set<NodeProto>();
  const replaced: string[] = [];
  const swap = new Map<NodeProto, NodeProto>();

  /** The x of relu6(x + 3) for a Clip(Add(x, 3), 0, 6). */
  const relu6Plus3 = (clip: NodeProto): { x: string; nodes: NodeProto[] } | undefined => {
    const lo = clip.input?.[1] ? scalarConstant(graph, clip.input[1]) : findAttribute(clip, 'min')?.f ?? undefined;
    const hi = clip.input?.[2] ? scalarConstant(graph, clip.input[2]) : findAttribute(clip, 'max')?.f ?? undefined;
    if (!near(lo, 0) || !near(hi, 6)) return undefined;
    const add = only(clip.input?.[0], 'Add');
    if (!add || add.input?.length !== 2) return undefined;
    for (const x of add.input) {
      if (near(scalarConstant(graph, other(add, x)), 3) && !getConstant(graph, x)) return { x, nodes: [add, clip] };
    }
    return undefined;
  };

  for (const mul of graph.node ?? []) {
    if (removed.has(mul) || !isDefault(mul) || mul.input?.length !== 2) continue;
    let match: { x: string; nodes: NodeProto[]; out: NodeProto } | undefined;
    if (mul.opType === 'Mul') {
      for (const x of mul.input) {
        const g = other(mul, x)!;
        // x · HardSigmoid(x; 1/6, 0.5)
        const hs = only(g, 'HardSigmoid');
        if (hs && hs.input?.[0] === x && near(findAttribute(hs, 'alpha')?.f ?? 0.2, 1 / 6) && near(findAttribute(hs, 'beta')?.f ?? 0.5, 0.5)) {
          match = { x, nodes: [hs], out: mul };
          break;
        }
        // x · (relu6(x + 3) / 6) or x · (relu6(x + 3) · 1/6)
        const scale = only(g, 'Div', 'Mul');
        if (scale && scale.input?.length === 2) {
          const k = scalarConstant(graph, scale.input[1]);
          const ok = scale.opType === 'Div' ? near(k, 6) : near(k, 1 / 6);
          const clip = ok ? only(scale.input[0], 'Clip') : undefined;
          const inner = clip && relu6Plus3(clip);
          if (inner && inner.x === x) {
            match = { x, nodes: [...inner.nodes, scale], out: mul };
            break;
          }
        }
      }
    } else if (mul.opType === 'Div' && near(scalarConstant(graph, mul.input[1]), 6)) {
      // (x · relu6(x + 3)) / 6
      const prod = only(mul.input[0], 'Mul');
      if (prod && prod.input?.length === 2) {
        for (const x of prod.input) {
          const clip = only(other(prod, x), 'Clip');
          const inner = clip && relu6Plus3(clip);
          if (inner && inner.x === x) {
            match = { x, nodes: [...inner.nodes, prod], out: mul };
            break;
          }
        }
      }
    }
    if (!match || [...match.nodes, match.out].some((n) => removed.has(n))) continue;
    // In the place of the last node, so every reader still comes after it.
    swap.set(match.out, onnx.NodeProto.create({ name: `${match.out.name || match.out.output![0]}/HardSwish`, opType: 'HardSwish', input: [match.x], output: [match.out.output![0]!] }));
    for (const n of [...match.nodes, match.out]) removed.add(n);
    replaced.push(match.out.output![0]!);
  }
  if (replaced.length === 0 || dryRun) return replaced;
  const before = new Set((graph.node ?? []).flatMap((n) => n.input ?? []));
  graph.node = (graph.node ?? []).flatMap((n) => (swap.has(n) ? [swap.get(n)!] : removed.has(n) ? [] : [n]));
  // Drop the constants (3, 6, 1/6, clip bounds) that only the replaced nodes read.
  const after = new Set((graph.node ?? []).flatMap((n) => n.input ?? []));
  const unread = (name: string) => before.has(name) && !after.has(name);
  graph.initializer = (graph.initializer ?? []).filter((t) => !unread(t.name ?? ''));
  graph.input = (graph.input ?? []).filter((v) => !unread(v.name ?? ''));
  graph.node = graph.node.filter((n) => !(n.opType === 'Constant' && (n.output ?? []).every(unread)));
  return replaced;
}
