/**
 * Builds small ONNX models in code for tests.
 *
 *   const g = new GraphBuilder('tiny')
 *     .input('x', DataType.FLOAT, [1, 3])
 *     .initializer('w', [3, 2], new Float32Array([...]))
 *     .node('MatMul', ['x', 'w'], ['y'])
 *     .output('y', DataType.FLOAT, [1, 2]);
 *   const model = buildModel(g.build(), { opset: 13 });
 *
 * Attribute values are typed by their JS value: integer numbers → INT, other numbers → FLOAT,
 * strings → STRING, arrays of those → INTS/FLOATS/STRINGS, TensorProto → TENSOR, GraphProto (or a
 * GraphBuilder) → GRAPH. Wrap integer-valued floats as `float(1)` / `floats([1, 2])`.
 */
import {
  DataType,
  decodeModel,
  encodeModel,
  makeTensor,
  onnx,
  type GraphProto,
  type ModelProto,
  type TensorInput,
  type TensorProto,
} from '../../src/onnx/index.js';

const { AttributeType } = onnx.AttributeProto;

interface FloatMark {
  readonly kind: 'float';
  readonly value: number;
}
interface FloatsMark {
  readonly kind: 'floats';
  readonly value: readonly number[];
}

export const float = (value: number): FloatMark => ({ kind: 'float', value });
export const floats = (value: readonly number[]): FloatsMark => ({ kind: 'floats', value });

export type AttrValue =
  | number
  | string
  | readonly number[]
  | readonly string[]
  | FloatMark
  | FloatsMark
  | TensorProto
  | GraphProto
  | GraphBuilder
  | readonly GraphProto[];

function isTensor(v: object): v is TensorProto {
  return v instanceof onnx.TensorProto;
}

function isGraph(v: object): v is GraphProto {
  return v instanceof onnx.GraphProto;
}

/** One AttributeProto with its `type` set, as exporters write them. */
export function attr(name: string, value: AttrValue): onnx.AttributeProto {
  const a = onnx.AttributeProto.create({ name });
  const text = new TextEncoder();
  if (typeof value === 'number') {
    if (Number.isInteger(value)) Object.assign(a, { type: AttributeType.INT, i: value });
    else Object.assign(a, { type: AttributeType.FLOAT, f: value });
  } else if (typeof value === 'string') {
    Object.assign(a, { type: AttributeType.STRING, s: text.encode(value) });
  } else if (value instanceof GraphBuilder) {
    Object.assign(a, { type: AttributeType.GRAPH, g: value.build() });
  } else if (Array.isArray(value)) {
    if (value.length > 0 && isGraph(value[0] as object)) {
      Object.assign(a, { type: AttributeType.GRAPHS, graphs: [...value] });
    } else if (value.every((v) => typeof v === 'string')) {
      Object.assign(a, { type: AttributeType.STRINGS, strings: (value as string[]).map((s) => text.encode(s)) });
    } else if ((value as number[]).every(Number.isInteger)) {
      Object.assign(a, { type: AttributeType.INTS, ints: [...(value as number[])] });
    } else {
      Object.assign(a, { type: AttributeType.FLOATS, floats: [...(value as number[])] });
    }
  } else if ('kind' in value && value.kind === 'float') {
    Object.assign(a, { type: AttributeType.FLOAT, f: value.value });
  } else if ('kind' in value && value.kind === 'floats') {
    Object.assign(a, { type: AttributeType.FLOATS, floats: [...value.value] });
  } else if (isTensor(value)) {
    Object.assign(a, { type: AttributeType.TENSOR, t: value });
  } else if (isGraph(value)) {
    Object.assign(a, { type: AttributeType.GRAPH, g: value });
  } else {
    throw new Error(`attribute ${name}: unsupported value`);
  }
  return a;
}

/** A ValueInfoProto for a tensor; shape entries are numbers or symbolic names. Omit the shape for
 * an unknown rank, and the element type for an untyped value. */
export function valueInfo(name: string, elemType?: number, shape?: readonly (number | string)[]): onnx.ValueInfoProto {
  if (elemType === undefined) return onnx.ValueInfoProto.create({ name });
  const tensorType = onnx.TypeProto.Tensor.create({ elemType });
  if (shape) {
    tensorType.shape = onnx.TensorShapeProto.create({
      dim: shape.map((d) => onnx.TensorShapeProto.Dimension.create(typeof d === 'number' ? { dimValue: d } : { dimParam: d })),
    });
  }
  return onnx.ValueInfoProto.create({ name, type: onnx.TypeProto.create({ tensorType }) });
}

export interface NodeOptions {
  name?: string;
  domain?: string;
}

export class GraphBuilder {
  private readonly nodes: onnx.NodeProto[] = [];
  private readonly inputs: onnx.ValueInfoProto[] = [];
  private readonly outputs: onnx.ValueInfoProto[] = [];
  private readonly initializers: TensorProto[] = [];

  constructor(readonly name = 'graph') {}

  input(name: string, elemType: number = DataType.FLOAT, shape?: readonly (number | string)[]): this {
    this.inputs.push(valueInfo(name, elemType, shape));
    return this;
  }

  /** Graph output; leave the type out for subgraph outputs whose type is inferred. */
  output(name: string, elemType?: number, shape?: readonly (number | string)[]): this {
    this.outputs.push(valueInfo(name, elemType, shape));
    return this;
  }

  /** A FLOAT initializer from a Float32Array, or any type with `dataType`. */
  initializer(name: string, dims: readonly number[], data: TensorInput, dataType: number = DataType.FLOAT): this {
    this.initializers.push(makeTensor(name, dataType, dims, data));
    return this;
  }

  /** An initializer built elsewhere (e.g. with typed fields instead of raw_data). */
  tensor(t: TensorProto): this {
    this.initializers.push(t);
    return this;
  }

  /** A Constant node producing `output` with the given tensor as its value. */
  constant(output: string, t: TensorProto, options: NodeOptions = {}): this {
    return this.node('Constant', [], [output], { value: t }, options);
  }

  node(
    opType: string,
    inputs: readonly string[],
    outputs: readonly string[],
    attrs: Record<string, AttrValue> = {},
    options: NodeOptions = {},
  ): this {
    const node = onnx.NodeProto.create({
      opType,
      input: [...inputs],
      output: [...outputs],
      attribute: Object.entries(attrs).map(([k, v]) => attr(k, v)),
    });
    if (options.name !== undefined) node.name = options.name;
    if (options.domain !== undefined) node.domain = options.domain;
    this.nodes.push(node);
    return this;
  }

  build(): onnx.GraphProto {
    return onnx.GraphProto.create({
      name: this.name,
      node: [...this.nodes],
      input: [...this.inputs],
      output: [...this.outputs],
      initializer: [...this.initializers],
    });
  }
}

export interface ModelOptions {
  /** Default-domain opset version (default 13). */
  opset?: number;
  /** Other domains, e.g. { 'com.microsoft': 1 }. */
  opsets?: Record<string, number>;
  irVersion?: number;
  producerName?: string;
}

export function buildModel(graph: GraphProto | GraphBuilder, options: ModelOptions = {}): onnx.ModelProto {
  const opsetImport = [onnx.OperatorSetIdProto.create({ domain: '', version: options.opset ?? 13 })];
  for (const [domain, version] of Object.entries(options.opsets ?? {})) {
    opsetImport.push(onnx.OperatorSetIdProto.create({ domain, version }));
  }
  return onnx.ModelProto.create({
    irVersion: options.irVersion ?? 8,
    producerName: options.producerName ?? 'autoquant-tests',
    opsetImport,
    graph: graph instanceof GraphBuilder ? graph.build() : graph,
  });
}

/** Encode then decode, so the model looks exactly like one read from a file. */
export function roundTrip(model: ModelProto): ModelProto {
  return decodeModel(encodeModel(model));
}
