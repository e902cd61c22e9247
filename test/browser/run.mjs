// Browser suite: runs test/browser/suite.js in headless Chromium against the built package.
import { existsSync } from 'node:fs';
import { chromiumCandidates, chromiumPath, runPage } from './harness.mjs';

const inCI = /^(1|true)$/i.test(process.env.CI ?? '');

if (!chromiumPath) {
  const msg = `no Chromium found (looked at ${chromiumCandidates.join(', ')}); install it with 'apt-get install -y chromium' or set CHROMIUM_PATH`;
  if (inCI) {
    console.error(`browser suite FAILED: ${msg}`);
    process.exit(1);
  }
  console.log(`browser suite SKIPPED: ${msg}`);
  process.exit(0);
}
if (!existsSync(new URL('../../dist/index.js', import.meta.url))) {
  console.error("browser suite FAILED: dist/index.js is missing; run 'npm run build' first");
  process.exit(1);
}

let failed = 0;
let passed = 0;
try {
  const results = await runPage('/test/browser/index.html');
  for (const r of results) {
    if (r.ok) passed++;
    else failed++;
    console.log(`${r.ok ? 'ok  ' : 'FAIL'} ${r.name} (${r.ms.toFixed(0)} ms)${r.ok ? '' : `\n     ${r.error}`}`);
  }
} catch (e) {
  failed++;
  console.error(`browser suite crashed: ${e?.stack ?? e}`);
}
{
  const name = 'the HTML report opens from a file without network, and its table and both charts render';
  const t0 = performance.now();
  try {
    const { checkReport } = await import('./report.mjs');
    await checkReport({ screenshot: process.env.REPORT_SCREENSHOT });
    passed++;
    console.log(`ok   ${name} (${(performance.now() - t0).toFixed(0)} ms)`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}\n     ${e?.message ?? e}`);
  }
}
console.log(`browser: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 && passed > 0 ? 0 : 1);
