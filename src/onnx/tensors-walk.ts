/**
 * Visits every TensorProto stored in a model: initializers, sparse initializers and tensor-valued
 * node attributes, in the main graph, its subgraphs, training graphs and model-local functions.
 */
import { walkGraphs } from './graph.js';
import type { AttributeProto, GraphProto, ModelProto, NodeProto, SparseTensorProto, TensorProto } from './types.js';

type Visit = (tensor: TensorProto) => void;

function visitSparse(s: SparseTensorProto | null | undefined, visit: Visit): void {
  if (s?.values) visit(s.values);
  if (s?.indices) visit(s.indices);
}

function visitAttributes(node: NodeProto, visit: Visit): void {
  for (const a of (node.attribute ?? []) as AttributeProto[]) {
    if (a.t) visit(a.t);
    for (const t of a.tensors ?? []) visit(t);
    visitSparse(a.sparseTensor, visit);
    for (const s of a.sparseTensors ?? []) visitSparse(s, visit);
  }
}

function visitGraphTree(root: GraphProto, visit: Visit): void {
  walkGraphs(root, (graph) => {
    for (const t of graph.initializer ?? []) visit(t);
    for (const s of graph.sparseInitializer ?? []) visitSparse(s, visit);
    for (const node of graph.node ?? []) visitAttributes(node, visit);
  });
}

export function forEachTensor(model: ModelProto, visit: Visit): void {
  if (model.graph) visitGraphTree(model.graph, visit);
  for (const info of model.trainingInfo ?? []) {
    if (info.initialization) visitGraphTree(info.initialization, visit);
    if (info.algorithm) visitGraphTree(info.algorithm, visit);
  }
  for (const fn of model.functions ?? []) {
    for (const node of fn.node ?? []) {
      visitAttributes(node, visit);
      // Function bodies can hold If/Loop nodes too.
      for (const a of node.attribute ?? []) {
        if (a.g) visitGraphTree(a.g, visit);
        for (const g of a.graphs ?? []) visitGraphTree(g, visit);
      }
    }
  }
}
