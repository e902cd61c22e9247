/**
 * File access for Node and Deno (both provide `node:fs`). Browsers get a typed error that says what
 * to pass instead. Node built-ins are imported lazily so browser bundles never evaluate them.
 */
import { UnsupportedEnvironmentError } from '../errors.js';
import { env } from './env.js';

type Fs = typeof import('node:fs/promises');
type Path = typeof import('node:path');

let modules: Promise<{ fs: Fs; path: Path; url: typeof import('node:url') }> | undefined;

function nodeModules() {
  if (!env.hasFileSystem) {
    throw new UnsupportedEnvironmentError(
      `file paths are not supported in ${env.runtime}: pass the model as a Uint8Array or ArrayBuffer`,
    );
  }
  modules ??= Promise.all([
    import('node:fs/promises'),
    import('node:path'),
    import('node:url'),
  ]).then(([fs, path, url]) => ({ fs, path, url }));
  return modules;
}

/** A file path, or a `file:` URL (string or URL object), as a plain path. */
export async function toPath(location: string | URL): Promise<string> {
  const { url } = await nodeModules();
  if (location instanceof URL) return url.fileURLToPath(location);
  if (location.startsWith('file:')) return url.fileURLToPath(location);
  return location;
}

export async function readFileBytes(location: string | URL): Promise<Uint8Array> {
  const { fs } = await nodeModules();
  const buf = await fs.readFile(await toPath(location));
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

export async function dirnameOf(location: string | URL): Promise<string> {
  const { path } = await nodeModules();
  return path.dirname(await toPath(location));
}

export async function joinPath(...parts: string[]): Promise<string> {
  const { path } = await nodeModules();
  return path.join(...parts);
}

/**
 * Write to `target` so that readers see either the old file or the whole new one: write a sibling
 * temporary file, then rename over the target (atomic on one file system).
 */
export async function writeFileAtomic(target: string | URL, data: Uint8Array | string): Promise<void> {
  const { fs, path } = await nodeModules();
  const file = await toPath(target);
  await fs.mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
  try {
    await fs.writeFile(tmp, data);
    await fs.rename(tmp, file);
  } catch (err) {
    await fs.rm(tmp, { force: true }).catch(() => {});
    throw err;
  }
}
