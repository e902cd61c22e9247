// Every bench table goes through here: printed as Markdown for the reader at the terminal and written
// as JSON under bench/out/, from which scripts/bench-docs.mjs renders docs/benchmarks.md, so no figure
// in the docs is ever copied by hand. Runs under Node and Deno (node: specifiers).
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, platform } from 'node:os';
import { fileURLToPath } from 'node:url';

const OUT = fileURLToPath(new URL('./out/', import.meta.url));

function runtime() {
  if (globalThis.Deno) return `Deno ${globalThis.Deno.version.deno}`;
  return `Node ${process.version}`;
}

/** The machine a table was measured on, stored beside it: figures from different machines do not compare. */
export function environment() {
  return { runtime: runtime(), platform: platform(), cores: availableParallelism(), cpu: cpus()[0]?.model?.trim() ?? 'unknown' };
}

const cell = (v) => (v === null || v === undefined ? '-' : String(v));

/** The Markdown form of a stored table; scripts/bench-docs.mjs renders the same text. */
export function markdownTable({ header, align, rows }) {
  const sep = header.map((_, i) => (align?.[i] === 'r' ? '--:' : '---'));
  return [header, sep, ...rows].map((r) => `| ${r.map(cell).join(' | ')} |`).join('\n');
}

/**
 * Prints and stores one table. `id` names bench/out/<id>.json (the docs refer to it); `title` says what
 * was measured and how; `align` has one letter per column ('l' or 'r'); rows hold formatted cells.
 */
export function emitTable(id, { title, header, align, rows, note }) {
  if (!/^[a-z0-9-]+$/.test(id)) throw new Error(`bench table id ${id}: use lower-case letters, digits and dashes`);
  for (const r of rows) if (r.length !== header.length) throw new Error(`bench table ${id}: a row has ${r.length} cells for ${header.length} columns`);
  const table = { id, title, header, align: align ?? header.map(() => 'l'), rows: rows.map((r) => r.map(cell)), note, environment: environment(), measured: new Date().toISOString() };
  console.log(`\n${title}`);
  console.log(markdownTable(table));
  if (note) console.log(`\n${note}`);
  mkdirSync(OUT, { recursive: true });
  const file = `${OUT}${id}.json`;
  writeFileSync(`${file}.tmp`, `${JSON.stringify(table, null, 1)}\n`);
  renameSync(`${file}.tmp`, file);
}
