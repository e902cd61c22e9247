/**
 * Runs the built command-line tool (dist/cli.js) as a child process, for end-to-end tests.
 * The suite runs after `npm run build`; `builtCli()` fails with a clear message when it has not.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const CLI = join(ROOT, 'dist/cli.js');
export const DIST_INDEX = join(ROOT, 'dist/index.js');
/** The built package as an absolute file URL, for evaluator modules written into temp dirs. */
export const DIST_INDEX_URL = pathToFileURL(DIST_INDEX).href;

export function builtCli(): string {
  for (const f of [CLI, DIST_INDEX]) {
    if (!existsSync(f)) throw new Error(`${f} does not exist: run \`npm run build\` before the CLI tests`);
  }
  return CLI;
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** `node dist/cli.js ...args` in `cwd`; never rejects on a non-zero exit. */
export function runCli(args: readonly string[], cwd: string, timeoutMs = 60_000): Promise<CliResult> {
  return new Promise((done, fail) => {
    execFile(process.execPath, [builtCli(), ...args], { cwd, timeout: timeoutMs, maxBuffer: 64 << 20, env: { ...process.env, NO_COLOR: '1' } }, (err, stdout, stderr) => {
      const e = err as (NodeJS.ErrnoException & { code?: number | string; killed?: boolean; signal?: NodeJS.Signals }) | null;
      if (e && typeof e.code === 'string') return fail(e); // spawn failure (ENOENT, maxBuffer...)
      if (e?.killed) return fail(new Error(`autoquant ${args.join(' ')} timed out after ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
      done({ code: e ? ((e.code as number | undefined) ?? null) : 0, signal: e?.signal ?? null, stdout, stderr });
    });
  });
}

const created: string[] = [];

/** A fresh temp dir holding the given files (relative name → bytes or text); see removeTempDirs. */
export function tempDir(files: Record<string, Uint8Array | string> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'aq-cli-'));
  created.push(dir);
  for (const [name, data] of Object.entries(files)) writeFileSync(join(dir, name), data);
  return dir;
}

/** Removes every dir tempDir made (set AQ_KEEP_TMP=1 to keep them for debugging). */
export function removeTempDirs(): void {
  if (process.env.AQ_KEEP_TMP) return;
  for (const dir of created.splice(0)) rmSync(dir, { recursive: true, force: true });
}
