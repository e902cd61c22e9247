#!/usr/bin/env node
// Runs the Deno suite: the WebGPU test in a process of its own, the rest in another, and judges each
// by what Deno's test runner reports.
//
// Deno's WebGPU (wgpu over a software Vulkan adapter here) sometimes aborts the process at exit with
// "double free or corruption" after every test has passed and the runner has printed its summary
// (seen about once in seven runs, more often under load; destroying the device first did not stop
// it). That abort happens in teardown, after the runner's verdict, so it is reported loudly but does
// not fail the suite. Anything else fails: a failed or missing test, or any other non-zero exit.
import { spawnSync } from 'node:child_process';

const PERMS = ['--allow-read', '--allow-env', '--allow-sys', '--allow-write', '--no-check'];
const runs = [
  { name: 'Deno suite', args: [...PERMS, '--ignore=test/deno/webgpu.test.ts', 'test/deno/'] },
  { name: 'Deno WebGPU test', args: [...PERMS, 'test/deno/webgpu.test.ts'] },
];
const plain = (s) => s.replace(/\x1b\[[0-9;]*m/g, '');

let failed = false;
for (const run of runs) {
  // glibc writes its abort message to the terminal unless told to use stderr.
  const r = spawnSync('npx', ['deno', 'test', ...run.args], { encoding: 'utf8', maxBuffer: 1 << 26, env: { ...process.env, LIBC_FATAL_STDERR_: '1' } });
  process.stdout.write(r.stdout);
  process.stderr.write(r.stderr);
  const summary = /^ok \| (\d+) passed \| 0 failed/m.exec(plain(r.stdout));
  const passed = summary !== null && Number(summary[1]) > 0;
  if (r.status === 0 && passed) continue;
  // The summary is the runner's last word on the tests: an abort after it is teardown.
  if (passed && (r.status === 134 || r.signal === 'SIGABRT')) {
    const why = /double free or corruption|corrupted size vs\. prev_size/.exec(plain(r.stderr))?.[0] ?? 'SIGABRT';
    console.error(`${run.name}: all tests passed; Deno then aborted in WebGPU teardown at exit (${why}; known, see test/deno/run.mjs): not counted as a failure`);
    continue;
  }
  console.error(`${run.name}: FAILED (exit status ${r.status}, signal ${r.signal})`);
  failed = true;
}
process.exit(failed ? 1 : 0);
