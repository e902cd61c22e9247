#!/usr/bin/env node
// Runs the Deno WebGPU test in its own process and judges it by what the test runner reports.
//
// Deno's WebGPU (wgpu over a software Vulkan adapter here) sometimes aborts the process at exit with
// "double free or corruption" after every test has passed and the runner has printed its summary
// (seen about once in seven runs, more often under load; destroying the device first did not stop
// it). That abort happens in teardown, after the runner's verdict, so it is reported loudly but does
// not fail the suite. Anything else fails: a failed or missing test, or any other non-zero exit.
import { spawnSync } from 'node:child_process';

const args = ['deno', 'test', '--allow-read', '--allow-env', '--allow-sys', '--allow-write', '--no-check', 'test/deno/webgpu.test.ts'];
// glibc writes its abort message to the terminal unless told to use stderr.
const r = spawnSync('npx', args, { encoding: 'utf8', maxBuffer: 1 << 26, env: { ...process.env, LIBC_FATAL_STDERR_: '1' } });
process.stdout.write(r.stdout);
process.stderr.write(r.stderr);
const plain = (s) => s.replace(/\x1b\[[0-9;]*m/g, '');
const out = plain(r.stdout);
const summary = /^ok \| 1 passed \| 0 failed/m.exec(out);
if (r.status === 0 && summary) process.exit(0);
// The summary is the runner's last word on the tests: an abort after it is teardown.
const teardownAbort = summary && (r.status === 134 || r.signal === 'SIGABRT');
if (teardownAbort) {
  const why = /double free or corruption|corrupted size vs\. prev_size/.exec(plain(r.stderr))?.[0] ?? 'SIGABRT';
  console.error(`run-webgpu: the test passed; Deno then aborted in WebGPU teardown at exit (${why}; known, see this file): not counted as a failure`);
  process.exit(0);
}
console.error(`run-webgpu: failed (exit status ${r.status}, signal ${r.signal})`);
process.exit(1);
