/**
 * The Deno and browser suites load committed copies of generated fixtures (they cannot run the
 * TypeScript generators); these tests keep the copies identical to what the generators make.
 * Regenerate with UPDATE_FIXTURES=1 npx vitest run test/node/fixtures.test.ts
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import { outlierModel } from '../helpers/outlier-model.js';
import { plantedMlp } from '../helpers/planted-mlp.js';

const FILE = 'test/fixtures/outlier_mlp.onnx';

it('the committed outlier MLP fixture is what outlierModel() generates', () => {
  const { bytes } = outlierModel();
  if (process.env.UPDATE_FIXTURES) writeFileSync(FILE, bytes);
  expect(existsSync(FILE)).toBe(true);
  expect(Buffer.compare(readFileSync(FILE), Buffer.from(bytes))).toBe(0);
});

const PLANTED_FILE = 'test/fixtures/planted_mlp.onnx';

it('the committed planted-outlier classifier fixture is what plantedMlp() generates', () => {
  const bytes = plantedMlp();
  if (process.env.UPDATE_FIXTURES) writeFileSync(PLANTED_FILE, bytes);
  expect(existsSync(PLANTED_FILE)).toBe(true);
  expect(Buffer.compare(readFileSync(PLANTED_FILE), Buffer.from(bytes))).toBe(0);
});
