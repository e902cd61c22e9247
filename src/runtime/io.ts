/**
 * File access for Node and Deno (both provide `node:fs`). Browsers get a typed error that says what
 * to pass instead. Node built-ins are imported lazily so browser bundles never evaluate them.
 */
import { FileAccessError, UnsupportedEnvironmentError } from '../errors.js';
import { quotePath } from '../text.js';
import { env, importNodeBuiltin } from './env.js';

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
    importNodeBuiltin<Fs>('fs/promises'),
    importNodeBuiltin<Path>('path'),
    importNodeBuiltin<typeof import('node:url')>('url'),
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

/** The file system's error in words a user acts on, naming the file. */
function accessError(file: string, doing: string, err: unknown): FileAccessError {
  const code = (err as { code?: string } | null)?.code;
  const why: Record<string, string> = {
    ENOENT: 'it does not exist',
    EISDIR: 'it is a directory',
    ENOTDIR: 'a part of its path is a file, not a directory',
    EEXIST: 'a part of its path is a file, not a directory',
    EACCES: 'permission denied',
    EPERM: 'permission denied',
    EROFS: 'the file system is read-only',
    ENOSPC: 'no space left on the device',
    ENAMETOOLONG: 'the name is too long',
    ELOOP: 'too many symbolic links',
  };
  const reason = (code && why[code]) ?? (err as Error)?.message ?? String(err);
  return new FileAccessError(file, `cannot ${doing} ${quotePath(file)}: ${reason}${code ? ` (${code})` : ''}`, { cause: err });
}

export async function readFileBytes(location: string | URL): Promise<Uint8Array> {
  const { fs } = await nodeModules();
  const file = await toPath(location);
  let buf: Awaited<ReturnType<Fs['readFile']>>;
  try {
    buf = await fs.readFile(file);
  } catch (err) {
    throw accessError(file, 'read', err);
  }
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

/**
 * Reads `relative` below `baseDir`, refusing a path that leaves it, symbolic links included (both
 * sides are resolved to real paths before the containment check).
 * @returns undefined when the real path lies outside `baseDir`.
 */
export async function readFileInside(baseDir: string, relative: string): Promise<Uint8Array | undefined> {
  const { fs, path } = await nodeModules();
  const joined = path.join(baseDir, relative);
  let real: string;
  let base: string;
  try {
    [real, base] = await Promise.all([fs.realpath(joined), fs.realpath(baseDir)]);
  } catch (err) {
    throw accessError(joined, 'read', err);
  }
  const rel = path.relative(base, real);
  if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel)) return undefined;
  return readFileBytes(real);
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
  if (file === '' || file.endsWith('/') || file.endsWith(path.sep)) throw new FileAccessError(file, `cannot write ${quotePath(file)}: it names no file`);
  try {
    // A missing directory is created (documented): output prefixes like out/model work on a fresh checkout.
    await fs.mkdir(path.dirname(file), { recursive: true });
  } catch (err) {
    throw accessError(path.dirname(file), 'create the directory', err);
  }
  const tmp = `${file}.tmp-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
  try {
    await fs.writeFile(tmp, data);
    await fs.rename(tmp, file);
  } catch (err) {
    await fs.rm(tmp, { force: true }).catch(() => {});
    throw accessError(file, 'write', err);
  }
}

/**
 * Fails now, with a FileAccessError, where writing `files` later would: their directory cannot be
 * created or written, or a name is taken by a directory. Run before long work whose results go there.
 */
export async function checkWritable(files: readonly string[]): Promise<void> {
  const { fs, path } = await nodeModules();
  for (const file of files) {
    if (file === '' || file.endsWith('/') || file.endsWith(path.sep)) throw new FileAccessError(file, `cannot write ${quotePath(file)}: it names no file`);
    const stat = await fs.stat(file).catch(() => undefined);
    if (stat?.isDirectory()) throw new FileAccessError(file, `cannot write ${quotePath(file)}: it is a directory`);
  }
  for (const dir of new Set(files.map((f) => path.resolve(path.dirname(f))))) {
    // The nearest existing ancestor must be a writable directory; nothing is created yet, so a run
    // that fails later leaves no trace.
    let existing = dir;
    let stat = await fs.stat(existing).catch(() => undefined);
    while (!stat && path.dirname(existing) !== existing) {
      existing = path.dirname(existing);
      stat = await fs.stat(existing).catch(() => undefined);
    }
    if (stat && !stat.isDirectory()) throw new FileAccessError(dir, `cannot write into ${quotePath(dir)}: ${quotePath(existing)} is a file, not a directory`);
    try {
      await fs.access(existing, fs.constants.W_OK | fs.constants.X_OK);
    } catch (err) {
      throw accessError(existing, 'write into', err);
    }
  }
}
