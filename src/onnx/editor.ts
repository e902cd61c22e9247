/**
 * Batched edits of one graph: new nodes are inserted before a given node (so topological order
 * holds when they only read values available there), initializers are added, unused ones dropped.
 * Names are made unique against everything already in the graph.
 */
import { onnx, type GraphProto, type NodeProto, type TensorProto } from './types.js';
import { implicitInputs } from './graph.js';
import { allNames } from './scope.js';

export class GraphEditor {
  private readonly taken = new Set<string>();
  private readonly before = new Map<NodeProto, NodeProto[]>();

  private readonly usedAtStart: Set<string>;
  /** Initializers added by this editor: dropped too if nothing reads them at commit. */
  private readonly added = new Set<string>();

  /** `reserved`: names of the graphs around this one (an If branch's editor must not reuse them). */
  constructor(readonly graph: GraphProto, reserved: Iterable<string> = []) {
    this.usedAtStart = usedNames(graph);
    for (const name of reserved) this.taken.add(name);
    // Names inside subgraphs count too: a new outer name equal to one defined in an If/Loop body
    // would break single assignment across scopes.
    for (const name of allNames(graph)) this.taken.add(name);
  }

  /** `base`, or `base_1`, `base_2`, ... whichever is free; the name is reserved. */
  name(base: string): string {
    let name = base;
    for (let k = 1; this.taken.has(name); k++) name = `${base}_${k}`;
    this.taken.add(name);
    return name;
  }

  addInitializer(t: TensorProto): string {
    const name = this.name(t.name ?? 'const');
    t.name = name;
    this.added.add(name);
    this.graph.initializer = [...(this.graph.initializer ?? []), t];
    return name;
  }

  /** Queues `node` to run just before `anchor` (a node of this graph). Returns the node's outputs. */
  insertBefore(anchor: NodeProto, node: { opType: string; inputs: string[]; outputs?: string[]; name?: string; attributes?: onnx.IAttributeProto[] }): string[] {
    const outputs = node.outputs ?? [this.name(`${node.name ?? node.opType}_out`)];
    const created = onnx.NodeProto.create({
      name: this.name(node.name ?? node.opType),
      opType: node.opType,
      input: node.inputs,
      output: outputs,
      attribute: (node.attributes ?? []).map((a) => onnx.AttributeProto.create(a)),
    });
    const list = this.before.get(anchor);
    if (list) list.push(created);
    else this.before.set(anchor, [created]);
    return outputs;
  }

  /**
   * Applies the queued insertions and removes the constants that the edits left unread:
   * initializers (with their graph-input entries, which older models list) and Constant nodes,
   * including ones added and superseded during the edit. Constants that were already unread before
   * the edits stay.
   */
  commit(): void {
    const nodes: NodeProto[] = [];
    for (const n of this.graph.node ?? []) {
      nodes.push(...(this.before.get(n) ?? []), n);
    }
    this.before.clear();
    this.graph.node = nodes;
    const used = usedNames(this.graph);
    const orphaned = (name: string) => (this.usedAtStart.has(name) || this.added.has(name)) && !used.has(name);
    this.graph.node = nodes.filter((n) => !(n.opType === 'Constant' && (!n.domain || n.domain === 'ai.onnx') && (n.output ?? []).every(orphaned)));
    const dropped = new Set((this.graph.initializer ?? []).map((t) => t.name ?? '').filter(orphaned));
    if (dropped.size === 0) return;
    this.graph.initializer = (this.graph.initializer ?? []).filter((t) => !dropped.has(t.name ?? ''));
    this.graph.input = (this.graph.input ?? []).filter((v) => !dropped.has(v.name ?? ''));
  }

}

/** Values read by a node (directly or inside a subgraph) or exported as graph outputs. */
function usedNames(graph: GraphProto): Set<string> {
  const used = new Set<string>();
  for (const n of graph.node ?? []) {
    for (const i of n.input ?? []) used.add(i);
    for (const i of implicitInputs(n)) used.add(i);
  }
  for (const o of graph.output ?? []) if (o.name) used.add(o.name);
  return used;
}

/** A float attribute. */
export const floatAttr = (name: string, f: number): onnx.IAttributeProto => ({ name, type: onnx.AttributeProto.AttributeType.FLOAT, f });
/** An int attribute. */
export const intAttr = (name: string, i: number): onnx.IAttributeProto => ({ name, type: onnx.AttributeProto.AttributeType.INT, i });
