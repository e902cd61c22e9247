/**
 * The Deno and browser suites load committed copies of generated fixtures (they cannot run the
 * TypeScript generators); these tests keep the copies identical to what the generators make.
 * Regenerate with UPDATE_FIXTURES=1 npx vitest run test/node/fixtures.test.ts
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import { outlierModel } from '../helpers/outlier-model.js';

const FILE = 'test/fixtures/outlier_mlp.onnx';

it('the committed outlier MLP fixture is what outlierModel() generates', () => {
  const { bytes } = outlierModel();
  if (process.env.UPDATE_FIXTURES) writeFileSync(FILE, bytes);
  expect(existsSync(FILE)).toBe(true);
  expect(Buffer.compare(readFileSync(FILE), Buffer.from(bytes))).toBe(0);
});
