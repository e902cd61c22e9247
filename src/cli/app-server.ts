/**
 * `autoquant app`: serves the browser app from the installed package (dist/app) and onnxruntime-web's
 * three files from its own package, over plain HTTP on loopback by default. Only those files are served;
 * the responses carry cross-origin isolation (onnxruntime-web's threads need SharedArrayBuffer) and a
 * policy that keeps every request on this origin.
 */
import type { Server } from 'node:http';
import { UsageError } from '../errors.js';
import { importNodeBuiltin } from '../runtime/env.js';

/** What the worker loads from ort/: see scripts/build-app.mjs, which copies the same three for a static folder. */
const ORT_FILES = ['ort.bundle.min.mjs', 'ort-wasm-simd-threaded.jsep.mjs', 'ort-wasm-simd-threaded.jsep.wasm'];
const TYPES: Record<string, string> = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.mjs': 'text/javascript', '.css': 'text/css', '.wasm': 'application/wasm', '.map': 'application/json' };
const ISOLATION = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
  'Cross-Origin-Resource-Policy': 'same-origin',
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
};

/** index.html's own Content-Security-Policy, sent as a header too: workers obey only the header. */
function pagePolicy(html: string, file: string): string {
  const policy = /http-equiv="Content-Security-Policy" content="([^"]+)"/.exec(html)?.[1];
  if (!policy) throw new UsageError(`app: ${file} declares no Content-Security-Policy; rebuild the app with 'npm run build'`);
  return policy;
}

export interface AppServer {
  url: string;
  close(): Promise<void>;
}

/** URL path → file on disk, for exactly the app's files; undefined for anything else. */
async function fileTable(appDir: string, ortDir: string): Promise<Map<string, string>> {
  const fs = await importNodeBuiltin<typeof import('node:fs/promises')>('fs/promises');
  const path = await importNodeBuiltin<typeof import('node:path')>('path');
  const table = new Map<string, string>();
  let names: string[];
  try {
    names = await fs.readdir(appDir);
  } catch {
    throw new UsageError(`app: the app is not built in this package (${appDir} is missing); in a checkout, run 'npm run build'`);
  }
  if (!names.includes('index.html')) throw new UsageError(`app: ${appDir} holds no index.html; run 'npm run build'`);
  for (const n of names) table.set(`/${n}`, path.join(appDir, n));
  table.set('/', path.join(appDir, 'index.html'));
  for (const f of ORT_FILES) {
    const file = path.join(ortDir, f);
    try {
      await fs.access(file);
    } catch {
      throw new UsageError(`app: onnxruntime-web's ${f} is missing from ${ortDir}; reinstall the onnxruntime-web package`);
    }
    table.set(`/ort/${f}`, file);
  }
  return table;
}

/** Where onnxruntime-web's dist files are, as this package resolves it. */
async function ortDistDir(): Promise<string> {
  const { createRequire } = await importNodeBuiltin<typeof import('node:module')>('module');
  const path = await importNodeBuiltin<typeof import('node:path')>('path');
  try {
    return path.dirname(createRequire(import.meta.url).resolve('onnxruntime-web'));
  } catch {
    throw new UsageError("app: the onnxruntime-web package cannot be found; reinstall autoquant's dependencies");
  }
}

export async function startAppServer(options: { port: number; host: string; appDir: string }): Promise<AppServer> {
  const http = await importNodeBuiltin<typeof import('node:http')>('http');
  const fs = await importNodeBuiltin<typeof import('node:fs/promises')>('fs/promises');
  const path = await importNodeBuiltin<typeof import('node:path')>('path');
  const table = await fileTable(options.appDir, await ortDistDir());
  const index = table.get('/')!;
  const HEADERS = { ...ISOLATION, 'Content-Security-Policy': pagePolicy(await fs.readFile(index, 'utf8'), index) };
  const server: Server = http.createServer((req, res) => {
    const pathname = new URL(req.url ?? '/', 'http://localhost').pathname;
    const file = table.get(pathname);
    if ((req.method !== 'GET' && req.method !== 'HEAD') || !file) {
      res.writeHead(req.method === 'GET' || req.method === 'HEAD' ? 404 : 405, HEADERS).end();
      return;
    }
    fs.readFile(file).then(
      (body) => res.writeHead(200, { ...HEADERS, 'Content-Type': TYPES[path.extname(file)] ?? 'application/octet-stream', 'Cache-Control': 'no-cache' }).end(req.method === 'HEAD' ? undefined : body),
      () => res.writeHead(404, HEADERS).end(),
    );
  });
  await new Promise<void>((ok, fail) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      fail(new UsageError(e.code === 'EADDRINUSE' ? `app: port ${options.port} on ${options.host} is in use; give another with --port N (0 picks a free one)` : `app: cannot listen on ${options.host}:${options.port}: ${e.message}`)),
    );
    server.listen(options.port, options.host, ok);
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  return {
    url: `http://${host}:${port}/`,
    close: () => new Promise<void>((ok) => server.close(() => ok())),
  };
}
