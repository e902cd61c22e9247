/**
 * Where onnxruntime-web runs each node of a model. onnxruntime has no API for it; it prints the
 * placement while creating a session at verbose log level ("Node(s) placed on [XExecutionProvider].
 * Number of nodes: N", then one "  OpType (name)" line per node). In Node and Deno its wasm module
 * writes those lines with `fs.writeSync` on the process's stdout and stderr; this module captures them
 * for the duration of one session creation and parses them. In browsers the module binds
 * `console.log` when it loads, so nothing in the page can intercept it: capture the console
 * from outside (e.g. a test driver) and hand the lines to `parsePlacement`.
 * A node placed on the CPU while the session asked for webgpu costs a GPU→CPU and a CPU→GPU copy on
 * every run.
 */
import { SessionCreationError, UnsupportedEnvironmentError } from '../errors.js';
import { env, importNodeBuiltin } from './env.js';
import { getOrt, type SessionOptions } from './ort.js';

export interface PlacedNode {
  opType: string;
  name: string;
}

/**
 * Per execution provider (`WebGpuExecutionProvider`, `CPUExecutionProvider`, ...): how many nodes it
 * runs, and which. When every node lands on one provider onnxruntime prints only the count, so
 * `nodes` of that provider is empty while `counts` has the number.
 */
export interface NodePlacement {
  counts: Record<string, number>;
  nodes: Record<string, PlacedNode[]>;
}

const HEADER = /(?:All nodes|Node\(s\)) placed on \[(\w+)\]\. Number of nodes: (\d+)/;
const ENTRY = /VerifyEachNodeIsAssignedToAnEp\]\s{3}(\S+) \((.*)\)\s*$/;

export function parsePlacement(lines: readonly string[]): NodePlacement {
  const out: NodePlacement = { counts: {}, nodes: {} };
  let current: PlacedNode[] | undefined;
  for (const raw of lines) {
    for (const line of raw.split('\n')) {
      if (!line.trim()) continue;
      const h = HEADER.exec(line);
      if (h) {
        out.counts[h[1]!] = (out.counts[h[1]!] ?? 0) + Number(h[2]);
        current = out.nodes[h[1]!] ??= [];
        continue;
      }
      const e = current && ENTRY.exec(line);
      if (e) current!.push({ opType: e[1]!, name: e[2]! });
      else if (!/VerifyEachNodeIsAssignedToAnEp/.test(line)) current = undefined;
    }
  }
  return out;
}

const isOrtLog = (text: string) => /\[[VIWEF]:onnxruntime/.test(text);

/** Runs `body` with writes of onnxruntime's log lines to fds 1 and 2 diverted into `lines`. */
async function capturingOrtLog<T>(lines: string[], body: () => Promise<T>): Promise<T> {
  const fs = (await importNodeBuiltin<{ default: { writeSync: (...a: unknown[]) => number } }>('fs')).default;
  const writeSync = fs.writeSync;
  fs.writeSync = function (fd: unknown, data: unknown, ...rest: unknown[]) {
    if ((fd === 1 || fd === 2) && typeof data === 'string' && isOrtLog(data)) {
      lines.push(data);
      return data.length;
    }
    return writeSync.call(this, fd, data, ...rest);
  };
  try {
    return await body();
  } finally {
    fs.writeSync = writeSync;
  }
}

/**
 * Creates (and releases) a session for `model` on `executionProviders` and returns where each node
 * was placed (Node and Deno). onnxruntime's log lines are swallowed while it runs; other output
 * passes. The session uses the given graph optimization level, since fusions change the nodes.
 */
export async function nodePlacement(
  model: Uint8Array,
  options: { executionProviders: NonNullable<SessionOptions['executionProviders']>; graphOptimizationLevel?: SessionOptions['graphOptimizationLevel'] },
): Promise<NodePlacement> {
  if (!env.hasFileSystem) {
    throw new UnsupportedEnvironmentError(
      `nodePlacement needs Node or Deno (${env.runtime} binds onnxruntime's log output where it cannot be read back): capture the console and use parsePlacement`,
    );
  }
  const ort = getOrt();
  const lines: string[] = [];
  const savedLevel = ort.env.logLevel;
  try {
    ort.env.logLevel = 'verbose';
    await capturingOrtLog(lines, async () => {
      const session = await ort.InferenceSession.create(model, {
        executionProviders: options.executionProviders,
        graphOptimizationLevel: options.graphOptimizationLevel ?? 'all',
        logSeverityLevel: 0,
        logVerbosityLevel: 0,
      });
      await session.release();
    });
  } catch (cause) {
    throw new SessionCreationError(`onnxruntime-web could not create a session to read node placement: ${(cause as Error)?.message ?? cause}`, { cause });
  } finally {
    ort.env.logLevel = savedLevel;
  }
  const placement = parsePlacement(lines);
  if (Object.keys(placement.counts).length === 0) {
    throw new SessionCreationError('onnxruntime-web printed no node placement; this build may not log it');
  }
  return placement;
}
