/**
 * The only module that inspects the host. Everything else asks `env` instead of probing
 * `process`, `Deno` or `navigator` itself, so runtime differences live in one place.
 */
type Runtime = 'node' | 'deno' | 'browser' | 'worker' | 'unknown';

const g = globalThis as Record<string, any>;

function detectRuntime(): Runtime {
  if (typeof g.Deno?.version?.deno === 'string') return 'deno';
  if (typeof g.process?.versions?.node === 'string' && typeof g.window === 'undefined') return 'node';
  if (typeof g.window !== 'undefined' && typeof g.document !== 'undefined') return 'browser';
  if (typeof g.WorkerGlobalScope !== 'undefined' && g.self instanceof g.WorkerGlobalScope) return 'worker';
  return 'unknown';
}

const runtime = detectRuntime();

export const env = Object.freeze({
  runtime,
  /** Node and Deno can read and write files via `node:fs`; browsers and workers cannot. */
  hasFileSystem: runtime === 'node' || runtime === 'deno',
  /** WebGPU adapter may exist (Deno and Chromium); whether one is granted is only known when asked. */
  hasWebGpuApi: typeof g.navigator?.gpu !== 'undefined',
  /** Hardware threads, used to size onnxruntime-web's thread pool. */
  hardwareConcurrency: (g.navigator?.hardwareConcurrency as number | undefined) ?? 1,
});

export type Env = typeof env;

/**
 * Imports a Node built-in (`node:${name}`) in Node and Deno. The specifier is computed so that
 * bundlers for browsers (esbuild, Vite, webpack) leave the import alone instead of failing to resolve
 * it; callers reach it only where `env.hasFileSystem` or the runtime says the module exists.
 */
export function importNodeBuiltin<T>(name: string): Promise<T> {
  return import(/* @vite-ignore */ /* webpackIgnore: true */ ['node', name].join(':')) as Promise<T>;
}

/**
 * Hardware threads available to this process: `os.availableParallelism()` in Node (Node 20 has no
 * navigator.hardwareConcurrency), navigator.hardwareConcurrency elsewhere, 1 when unknown.
 */
export async function cpuCount(): Promise<number> {
  if (runtime === 'node') {
    try {
      const os = await importNodeBuiltin<typeof import('node:os')>('os');
      return Math.max(1, os.availableParallelism?.() ?? os.cpus().length);
    } catch {
      return env.hardwareConcurrency;
    }
  }
  return Math.max(1, env.hardwareConcurrency);
}

/** Read an environment variable where the host has them; undefined in browsers. */
export function getEnvVar(name: string): string | undefined {
  if (runtime === 'deno') {
    try {
      return g.Deno.env.get(name) ?? undefined;
    } catch {
      return undefined; // --allow-env not granted
    }
  }
  if (runtime === 'node') return g.process.env[name];
  return undefined;
}
