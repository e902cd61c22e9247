/**
 * Read-only queries over a GraphProto: naming, ordering, producers/consumers, constants.
 * Nothing here mutates the graph except assignStableNames, which says so.
 */
import { OnnxFormatError } from '../errors.js';
import { int64ToBigInt, int64ToNumber } from './int64.js';
import { DataType, makeTensor } from './tensor.js';
import { type AttributeProto, type GraphProto, type ModelProto, type NodeProto, type TensorProto } from './types.js';

/** Subgraphs held by a node's attributes (If branches, Loop/Scan bodies), in attribute order. */
export function subgraphsOf(node: NodeProto): GraphProto[] {
  const out: GraphProto[] = [];
  for (const a of node.attribute ?? []) {
    if (a.g) out.push(a.g as GraphProto);
    for (const g of a.graphs ?? []) out.push(g as GraphProto);
  }
  return out;
}

/**
 * Visits `graph` and, depth first in node order, every subgraph nested in node attributes
 * (types GRAPH and GRAPHS). `parent` is the node holding the subgraph; depth 0 is `graph`.
 * Returning `false` from `visit` skips that graph's subgraphs.
 */
export function walkGraphs(
  graph: GraphProto,
  visit: (graph: GraphProto, parent: NodeProto | undefined, depth: number) => void | boolean,
): void {
  const step = (g: GraphProto, parent: NodeProto | undefined, depth: number): void => {
    if (visit(g, parent, depth) === false) return;
    for (const node of g.node ?? []) {
      for (const sub of subgraphsOf(node)) step(sub, node, depth + 1);
    }
  };
  step(graph, undefined, 0);
}

/** `node.name`, or `{opType}_{index}` for an unnamed node at position `index` of graph.node. */
export function stableNodeName(node: NodeProto, index: number): string {
  return node.name ? node.name : `${node.opType}_${index}`;
}

/**
 * A unique name for every node of `graph` (not its subgraphs), in node order. Named nodes keep
 * their name; unnamed ones get `{opType}_{index}`, and a name in `reserved` becomes `{name}_node`.
 * On a collision the later node (in node order) gets the first free `{name}_{k}` for k = 1, 2, ...,
 * so the result depends only on the graph.
 */
export function nodeNames(graph: GraphProto, reserved: ReadonlySet<string> = new Set()): string[] {
  const nodes = graph.node ?? [];
  const taken = new Set<string>(reserved);
  // Explicit names win over generated ones, whatever their position.
  const firstExplicit = new Map<string, number>();
  nodes.forEach((n, i) => {
    if (n.name && !reserved.has(n.name) && !firstExplicit.has(n.name)) firstExplicit.set(n.name, i);
  });
  for (const name of firstExplicit.keys()) taken.add(name);
  return nodes.map((node, i) => {
    const base = node.name && reserved.has(node.name) ? `${node.name}_node` : stableNodeName(node, i);
    if (node.name && firstExplicit.get(node.name) === i) return base;
    if (!taken.has(base)) {
      taken.add(base);
      return base;
    }
    let k = 1;
    while (taken.has(`${base}_${k}`)) k++;
    const name = `${base}_${k}`;
    taken.add(name);
    return name;
  });
}

/** Writes nodeNames(graph, reserved) into node.name, in place. Returns the names. */
export function assignStableNames(graph: GraphProto, reserved?: ReadonlySet<string>): string[] {
  const names = nodeNames(graph, reserved);
  (graph.node ?? []).forEach((node, i) => {
    node.name = names[i]!;
  });
  return names;
}

/** Names a graph defines for its nodes: inputs, initializers and sparse initializers. */
function graphDefinedNames(graph: GraphProto): Set<string> {
  const names = new Set<string>();
  for (const v of graph.input ?? []) if (v.name) names.add(v.name);
  for (const t of graph.initializer ?? []) if (t.name) names.add(t.name);
  for (const s of graph.sparseInitializer ?? []) if (s.values?.name) names.add(s.values.name);
  return names;
}

/** Names a subgraph uses but does not define itself: values captured from enclosing scopes. */
function freeNames(graph: GraphProto): string[] {
  const defined = graphDefinedNames(graph);
  const free: string[] = [];
  const seen = new Set<string>();
  const use = (name: string) => {
    if (name && !defined.has(name) && !seen.has(name)) {
      seen.add(name);
      free.push(name);
    }
  };
  for (const node of graph.node ?? []) {
    for (const name of node.input ?? []) use(name);
    for (const name of implicitInputs(node)) use(name);
    for (const name of node.output ?? []) if (name) defined.add(name);
  }
  // Graph outputs may pass an outer value straight through.
  for (const v of graph.output ?? []) if (v.name) use(v.name);
  return free;
}

/**
 * Outer-scope values a node reads through its subgraphs (If/Loop/Scan bodies), in first-use
 * order. These are real data dependencies even though they are not in node.input.
 */
export function implicitInputs(node: NodeProto): string[] {
  const out: string[] = [];
  const seen = new Set(node.input ?? []);
  for (const sub of subgraphsOf(node)) {
    for (const name of freeNames(sub)) {
      if (!seen.has(name)) {
        seen.add(name);
        out.push(name);
      }
    }
  }
  return out;
}

export interface Producer {
  node: NodeProto;
  /** Position of the node in graph.node. */
  index: number;
  /** Position of the value in node.output. */
  outputIndex: number;
}

/** Value name → the node of `graph` that produces it (subgraph-internal values excluded). */
export function producerMap(graph: GraphProto): Map<string, Producer> {
  const map = new Map<string, Producer>();
  (graph.node ?? []).forEach((node, index) => {
    (node.output ?? []).forEach((name, outputIndex) => {
      if (name) map.set(name, { node, index, outputIndex });
    });
  });
  return map;
}

export interface Consumer {
  node: NodeProto;
  /** Position of the node in graph.node. */
  index: number;
  /** Position in node.input, or -1 when the node reads the value inside a subgraph. */
  inputIndex: number;
}

/**
 * Value name → the nodes of `graph` that read it, in node order. A value used inside an If/Loop/
 * Scan body counts as consumed by the node owning that body, with inputIndex -1.
 */
export function consumerMap(graph: GraphProto): Map<string, Consumer[]> {
  const map = new Map<string, Consumer[]>();
  const add = (name: string, consumer: Consumer) => {
    if (!name) return;
    const list = map.get(name);
    if (list) list.push(consumer);
    else map.set(name, [consumer]);
  };
  (graph.node ?? []).forEach((node, index) => {
    (node.input ?? []).forEach((name, inputIndex) => add(name, { node, index, inputIndex }));
    for (const name of implicitInputs(node)) add(name, { node, index, inputIndex: -1 });
  });
  return map;
}

/**
 * Nodes of `graph` ordered so every node comes after the producers of its inputs (explicit and
 * through subgraphs). Kahn's algorithm, always taking the ready node that comes first in
 * graph.node, so an already sorted graph keeps its order. Values not produced by a node of this
 * graph (inputs, initializers, outer scope) are available from the start.
 * @throws OnnxFormatError naming the nodes on a cycle.
 */
export function topologicalOrder(graph: GraphProto): NodeProto[] {
  const nodes = graph.node ?? [];
  const producers = producerMap(graph);
  const pending = new Array<number>(nodes.length).fill(0);
  const dependents: number[][] = nodes.map(() => []);
  nodes.forEach((node, i) => {
    const deps = new Set<number>();
    for (const name of [...(node.input ?? []), ...implicitInputs(node)]) {
      const p = name ? producers.get(name) : undefined;
      if (p && p.index !== i) deps.add(p.index);
      else if (p) deps.add(i); // a node reading its own output is a cycle of one
    }
    for (const d of deps) {
      pending[i]!++;
      dependents[d]!.push(i);
    }
  });

  const ready = new MinHeap();
  pending.forEach((n, i) => n === 0 && ready.push(i));
  const order: NodeProto[] = [];
  while (ready.size > 0) {
    const i = ready.pop();
    order.push(nodes[i]!);
    for (const j of dependents[i]!) if (--pending[j]! === 0) ready.push(j);
  }
  if (order.length !== nodes.length) {
    const names = nodeNames(graph);
    const stuck = pending.flatMap((n, i) => (n > 0 ? [names[i]!] : []));
    const shown = stuck.slice(0, 10).join(', ') + (stuck.length > 10 ? `, ... (${stuck.length} in all)` : '');
    throw new OnnxFormatError(`graph${graph.name ? ` '${graph.name}'` : ''} has a cycle through nodes: ${shown}`);
  }
  return order;
}

/** Binary min-heap of node indices. */
class MinHeap {
  private items: number[] = [];
  get size(): number {
    return this.items.length;
  }
  push(v: number): void {
    const a = this.items;
    a.push(v);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (a[p]! <= v) break;
      a[i] = a[p]!;
      i = p;
    }
    a[i] = v;
  }
  pop(): number {
    const a = this.items;
    const top = a[0]!;
    const last = a.pop()!;
    if (a.length > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= a.length) break;
        const c = l + 1 < a.length && a[l + 1]! < a[l]! ? l + 1 : l;
        if (a[c]! >= last) break;
        a[i] = a[c]!;
        i = c;
      }
      a[i] = last;
    }
    return top;
  }
}

function isDefaultDomain(domain: string | null | undefined): boolean {
  return !domain || domain === 'ai.onnx';
}

/** The attribute called `name` on `node`, if any. */
export function findAttribute(node: NodeProto, name: string): AttributeProto | undefined {
  return (node.attribute ?? []).find((a) => a.name === name) as AttributeProto | undefined;
}

/** An int attribute's value, or `fallback` (the operator's default) when absent. */
export function attrInt(node: NodeProto, name: string, fallback: number): number {
  const a = findAttribute(node, name);
  return a?.i !== undefined && a.i !== null ? int64ToNumber(a.i) : fallback;
}

/** A float attribute's value, or `fallback` when absent. */
export function attrFloat(node: NodeProto, name: string, fallback: number): number {
  const a = findAttribute(node, name);
  return a?.f !== undefined && a.f !== null ? a.f : fallback;
}

/** The value of a Constant node as a tensor (value_float/ints/... are turned into tensors). */
function constantNodeTensor(node: NodeProto, name: string): TensorProto | undefined {
  const a = (node.attribute ?? [])[0] as AttributeProto | undefined;
  if (!a) return undefined;
  const text = new TextDecoder();
  switch (a.name) {
    case 'value':
      return a.t ?? undefined;
    case 'value_float':
      return makeTensor(name, DataType.FLOAT, [], [a.f ?? 0]);
    case 'value_floats':
      return makeTensor(name, DataType.FLOAT, [a.floats?.length ?? 0], a.floats ?? []);
    case 'value_int':
      return makeTensor(name, DataType.INT64, [], [int64ToBigInt(a.i ?? 0)]);
    case 'value_ints':
      return makeTensor(name, DataType.INT64, [a.ints?.length ?? 0], (a.ints ?? []).map((v) => int64ToBigInt(v)));
    case 'value_string':
      return makeTensor(name, DataType.STRING, [], [text.decode(a.s ?? new Uint8Array())]);
    case 'value_strings':
      return makeTensor(name, DataType.STRING, [a.strings?.length ?? 0], (a.strings ?? []).map((s) => text.decode(s)));
    default:
      return undefined; // sparse_value has no dense form here
  }
}

/**
 * The constant value named `name` in `graph`: an initializer, or the output of a Constant node
 * (for value_float/value_ints/... a tensor is synthesized). Undefined when the value is computed
 * at run time, is a sparse constant, or does not exist.
 */
export function getConstant(graph: GraphProto, name: string): TensorProto | undefined {
  const init = (graph.initializer ?? []).find((t) => t.name === name);
  if (init) return init as TensorProto;
  for (const node of graph.node ?? []) {
    if (node.opType === 'Constant' && isDefaultDomain(node.domain) && node.output?.[0] === name) {
      return constantNodeTensor(node, name);
    }
  }
  return undefined;
}

/**
 * The opset version a model imports for `domain`; '' and 'ai.onnx' are the same domain.
 * Undefined when the domain is not imported.
 */
export function opsetVersion(model: ModelProto, domain = ''): number | undefined {
  const wanted = isDefaultDomain(domain) ? '' : domain;
  let version: number | undefined;
  for (const o of model.opsetImport ?? []) {
    const d = isDefaultDomain(o.domain) ? '' : o.domain;
    if (d === wanted) version = Math.max(version ?? 0, int64ToNumber(o.version ?? 0));
  }
  return version;
}
