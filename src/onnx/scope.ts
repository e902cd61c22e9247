/**
 * Values and nodes inside If branches, addressed from the main graph. A body sees the values of
 * every graph around it (ONNX's outer scope), so a constant or a producer is looked up innermost
 * first; a body's values are not outputs of the model, so fetching one threads it out through
 * every If around it (`threadOutputs`).
 */
import { OnnxFormatError } from '../errors.js';
import { getConstant, subgraphsOf, walkGraphs } from './graph.js';
import { DataType, makeTensor } from './tensor.js';
import { onnx, type GraphProto, type ModelProto, type NodeProto, type TensorProto } from './types.js';

/** One step from a graph into a body: the node holding it (by name) and the attribute (then_branch, …). */
export interface ScopeStep {
  node: string;
  attribute: string;
}

/** The steps from the main graph to a body; empty for the main graph. */
export type Scope = readonly ScopeStep[];

/** The graph at `scope` under `root`, or undefined where a step names no such node or attribute. */
export function graphAt(root: GraphProto, scope: Scope | undefined): GraphProto | undefined {
  let g: GraphProto | undefined = root;
  for (const step of scope ?? []) {
    const node: NodeProto | undefined = (g.node ?? []).find((n) => n.name === step.node);
    g = node?.attribute?.find((a) => a.name === step.attribute)?.g as GraphProto | undefined;
    if (!g) return undefined;
  }
  return g;
}

/**
 * `items` grouped by the graph they are in (`root` itself for the main graph), in first-seen order;
 * `describe` names an item whose scope addresses no branch of `root`.
 */
export function byGraph<T>(root: GraphProto, items: readonly T[], scopeOf: (item: T) => Scope | undefined, describe: (item: T) => string): Map<GraphProto, T[]> {
  const groups = new Map<GraphProto, T[]>();
  for (const item of items) {
    const g = graphAt(root, scopeOf(item));
    if (!g) throw new OnnxFormatError(`${describe(item)}: no branch at ${scopePath(scopeOf(item))} in the model`);
    groups.set(g, [...(groups.get(g) ?? []), item]);
  }
  return groups;
}

/** The graphs `scope` passes through, innermost first, ending with `root`. */
export function scopeChain(root: GraphProto, scope: Scope | undefined): GraphProto[] {
  const chain = [root];
  let g = root;
  for (const step of scope ?? []) {
    const node = (g.node ?? []).find((n) => n.name === step.node);
    const body = node?.attribute?.find((a) => a.name === step.attribute)?.g as GraphProto | undefined;
    if (!body) throw new OnnxFormatError(`no body '${step.attribute}' in node '${step.node}'`);
    chain.unshift((g = body));
  }
  return chain;
}

/** The constant `name` as a body at `scope` sees it (its own first, then the outer graphs'). */
export function constantAt(root: GraphProto, scope: Scope | undefined, name: string): TensorProto | undefined {
  for (const g of scopeChain(root, scope)) {
    const t = getConstant(g, name);
    if (t) return t;
  }
  return undefined;
}

/** `If_0/then_branch/…`: where a body is, in words a user can find in a model viewer. */
export const scopePath = (scope: Scope | undefined) => (scope ?? []).map((s) => `${s.node}/${s.attribute}`).join('/');

/** Every name the model uses anywhere (values, nodes, initializers), for making new ones. */
export function allNames(root: GraphProto): Set<string> {
  const taken = new Set<string>();
  walkGraphs(root, (g) => {
    for (const v of [...(g.input ?? []), ...(g.output ?? []), ...(g.valueInfo ?? [])]) if (v.name) taken.add(v.name);
    for (const t of g.initializer ?? []) if (t.name) taken.add(t.name);
    for (const n of g.node ?? []) {
      if (n.name) taken.add(n.name);
      for (const o of n.output ?? []) if (o) taken.add(o);
      for (const i of n.input ?? []) if (i) taken.add(i);
    }
  });
  return taken;
}

function fresh(taken: Set<string>, base: string): string {
  let name = base;
  for (let k = 1; taken.has(name); k++) name = `${base}_${k}`;
  taken.add(name);
  return name;
}

/**
 * Names every node inside an If body that has no name or shares one with another node of the
 * model, as `{If node}/{branch}/{name or opType_index}`, in place: a config keys layers by node name,
 * and two branches often hold the same layer under the same name. Main-graph names must already be
 * stable (see assignStableNames).
 */
export function nameBodyNodes(root: GraphProto): void {
  const taken = new Set<string>((root.node ?? []).map((n) => n.name ?? ''));
  const visit = (graph: GraphProto, path: string) => {
    (graph.node ?? []).forEach((node, i) => {
      if (path) {
        const own = node.name || `${node.opType}_${i}`;
        node.name = node.name && !taken.has(node.name) ? node.name : fresh(taken, `${path}/${own}`);
        taken.add(node.name);
      }
      for (const a of node.attribute ?? []) for (const g of [a.g, ...(a.graphs ?? [])]) if (g) visit(g as GraphProto, `${node.name}/${a.name}`);
    });
  };
  visit(root, '');
}

interface Frame {
  /** The If node, in `parent`. */
  node: NodeProto;
  attribute: string;
  body: GraphProto;
}

/** For every value produced inside an If body (at any depth), the Ifs around it, outermost first. */
function bodyValues(root: GraphProto): Map<string, Frame[]> {
  const where = new Map<string, Frame[]>();
  const visit = (graph: GraphProto, frames: Frame[]) => {
    if (frames.length) {
      for (const t of graph.initializer ?? []) if (t.name) where.set(t.name, frames);
      for (const n of graph.node ?? []) for (const o of n.output ?? []) if (o) where.set(o, frames);
    }
    for (const node of graph.node ?? []) {
      if (node.opType !== 'If' || (node.domain && node.domain !== 'ai.onnx')) continue;
      for (const a of node.attribute ?? []) if (a.g) visit(a.g as GraphProto, [...frames, { node, attribute: a.name ?? '', body: a.g as GraphProto }]);
    }
  };
  visit(root, []);
  return where;
}

/**
 * Makes each of `names` that lives inside If bodies an output of the model, in place: the body
 * returns it, the other branch an empty float tensor (so a run that took the other branch yields
 * zero elements), and every If around it passes it on. Returns, per model output added, the value
 * it carries; names of the main graph are left to the caller.
 */
export function threadOutputs(model: ModelProto, names: readonly string[]): Map<string, string> {
  const root = model.graph!;
  const where = bodyValues(root);
  const taken = allNames(root);
  const threaded = new Map<string, string>();
  const floatOutput = (name: string) => onnx.ValueInfoProto.create({ name, type: { tensorType: { elemType: DataType.FLOAT } } });
  for (const name of new Set(names)) {
    const frames = where.get(name);
    if (!frames) continue;
    let current = name;
    for (let depth = frames.length - 1; depth >= 0; depth--) {
      const { node, attribute, body } = frames[depth]!;
      // A value the body already returns gets a copy: the If's existing output carries the other branch's value when that one runs.
      if ((body.output ?? []).some((o) => o.name === current)) {
        const copy = fresh(taken, `${current}::copy`);
        body.node = [...(body.node ?? []), onnx.NodeProto.create({ name: copy, opType: 'Identity', input: [current], output: [copy] })];
        current = copy;
      }
      body.output = [...(body.output ?? []), floatOutput(current)];
      for (const other of node.attribute ?? []) {
        if (other.name === attribute || !other.g) continue;
        const g = other.g as GraphProto;
        const empty = fresh(taken, `${name}::not_taken`);
        g.node = [...(g.node ?? []), onnx.NodeProto.create({ name: empty, opType: 'Constant', output: [empty], attribute: [{ name: 'value', type: onnx.AttributeProto.AttributeType.TENSOR, t: makeTensor(empty, DataType.FLOAT, [0], new Float32Array(0)) }] })];
        g.output = [...(g.output ?? []), floatOutput(empty)];
      }
      current = fresh(taken, `${name}::from_${node.name}`);
      node.output = [...(node.output ?? []), current];
    }
    if (!(root.output ?? []).some((o) => o.name === current)) root.output = [...(root.output ?? []), onnx.ValueInfoProto.create({ name: current })];
    threaded.set(current, name);
  }
  return threaded;
}

/** Whether `node` holds bodies this package looks into (If branches); Loop and Scan bodies run many times and are not. */
export const isIf = (node: NodeProto) => node.opType === 'If' && (!node.domain || node.domain === 'ai.onnx') && subgraphsOf(node).length > 0;
