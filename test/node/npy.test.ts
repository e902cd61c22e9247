import { readFileSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { AutoquantError } from '../../src/errors.js';
import {
  encodeNpy,
  encodeNpz,
  NpyFormatError,
  parseNpy,
  parseNpz,
  toFloat32,
  type NpyArray,
} from '../../src/data/npy.js';

// Fixtures and expected values come from test/fixtures/npy/make_npy_fixtures.py (run once, committed).
const dir = new URL('../fixtures/npy/', import.meta.url);
const fixture = (file: string): Uint8Array => new Uint8Array(readFileSync(new URL(file, dir)));

interface Expected {
  dtype: string;
  shape: number[];
  values: (number | boolean | string)[];
  bits?: number[];
}
const expected = JSON.parse(readFileSync(new URL('expected.json', dir), 'utf8')) as Record<string, Expected>;

/** Elements as JSON would hold them: int64 as decimal strings, bool as booleans. */
function plain(a: NpyArray): (number | boolean | string)[] {
  if (a.dtype === 'bool') return Array.from(a.data as Uint8Array, (v) => v !== 0);
  if (a.dtype === 'float16') return Array.from(toFloat32(a));
  return Array.from(a.data as ArrayLike<number | bigint>, (v) => (typeof v === 'bigint' ? v.toString() : v));
}

function expectMatches(a: NpyArray, e: Expected): void {
  expect(a.dtype).toBe(e.dtype);
  expect(a.shape).toEqual(e.shape);
  expect(a.fortranOrder).toBe(false);
  expect(a.data.length).toBe(e.shape.reduce((n, d) => n * d, 1));
  expect(plain(a)).toEqual(e.values);
  if (e.bits) expect(Array.from(a.data as Uint16Array)).toEqual(e.bits);
}

/** `bytes` copied to an odd offset inside a larger buffer, as a view into a bigger file would be. */
function atOddOffset(bytes: Uint8Array): Uint8Array {
  const backing = new Uint8Array(bytes.length + 3);
  backing.set(bytes, 1);
  return backing.subarray(1, 1 + bytes.length);
}

const npyFiles = Object.keys(expected).filter((k) => k.endsWith('.npy'));

describe('parseNpy on files written by NumPy', () => {
  it.each(npyFiles)('%s', (file) => {
    expectMatches(parseNpy(fixture(file), file), expected[file]!);
  });

  it('reads data sitting at an odd byte offset into an aligned, non-aliasing buffer', () => {
    const bytes = atOddOffset(fixture('float64.npy'));
    const a = parseNpy(bytes);
    expect(a.data.byteOffset).toBe(0);
    expect(a.data.buffer).not.toBe(bytes.buffer);
    expectMatches(a, expected['float64.npy']!);
  });

  it('gives the expected typed array classes', () => {
    expect(parseNpy(fixture('float32_2d.npy')).data).toBeInstanceOf(Float32Array);
    expect(parseNpy(fixture('float64.npy')).data).toBeInstanceOf(Float64Array);
    expect(parseNpy(fixture('int64.npy')).data).toBeInstanceOf(BigInt64Array);
    expect(parseNpy(fixture('float16.npy')).data).toBeInstanceOf(Uint16Array);
    expect(parseNpy(fixture('bool.npy')).data).toBeInstanceOf(Uint8Array);
    expect(parseNpy(fixture('int16_be.npy')).data).toBeInstanceOf(Int16Array);
  });

  it('keeps the sign of -0 and the smallest subnormal in float64', () => {
    const d = parseNpy(fixture('float64.npy')).data as Float64Array;
    expect(Object.is(d[3], -0)).toBe(true);
    expect(d[4]).toBe(Number.MIN_VALUE);
  });

  it('transposes Fortran-ordered 2-D and 3-D arrays to C order', () => {
    const a = parseNpy(fixture('float32_fortran.npy'));
    expect(Array.from(a.data as Float32Array)).toEqual([0, 1.5, 3, 4.5, 6, 7.5]);
    const b = parseNpy(fixture('int32_fortran_3d.npy'));
    expect(Array.from(b.data as Int32Array)).toEqual(Array.from({ length: 24 }, (_, i) => i - 10));
  });

  it('reads a 0-d scalar and an empty array', () => {
    expect(parseNpy(fixture('scalar.npy'))).toMatchObject({ dtype: 'float64', shape: [] });
    expect(Array.from(parseNpy(fixture('scalar.npy')).data as Float64Array)).toEqual([3.25]);
    const empty = parseNpy(fixture('empty.npy'));
    expect(empty.shape).toEqual([0, 3]);
    expect(empty.data.length).toBe(0);
  });
});

describe('parseNpz', () => {
  for (const file of ['stored.npz', 'deflated.npz']) {
    it(`reads ${file} in central directory order`, async () => {
      const arrays = await parseNpz(fixture(file), file);
      expect([...arrays.keys()]).toEqual(['weight', 'bias']);
      expectMatches(arrays.get('weight')!, expected[`${file}/weight`]!);
      expectMatches(arrays.get('bias')!, expected[`${file}/bias`]!);
    });
  }

  it('reads an archive at an odd byte offset', async () => {
    const arrays = await parseNpz(atOddOffset(fixture('deflated.npz')));
    expectMatches(arrays.get('weight')!, expected['deflated.npz/weight']!);
  });
});

describe('toFloat32', () => {
  it('converts every numeric dtype', () => {
    for (const file of npyFiles.filter((f) => !f.startsWith('bool'))) {
      const a = parseNpy(fixture(file));
      const e = expected[file]!;
      const want = e.values.map((v) => Math.fround(Number(v)));
      expect(Array.from(toFloat32(a)), file).toEqual(want);
    }
  });

  it('decodes float16 bits and maps bools to 0/1', () => {
    expect(Array.from(toFloat32(parseNpy(fixture('float16.npy'))).slice(0, 4))).toEqual([0, 1, -2.5, 65504]);
    expect(Array.from(toFloat32(parseNpy(fixture('bool.npy'))))).toEqual([1, 0, 0, 1, 1]);
  });

  it('returns a fresh array even for float32 input', () => {
    const a = parseNpy(fixture('float32_2d.npy'));
    const f = toFloat32(a);
    expect(f).not.toBe(a.data);
    expect(Array.from(f)).toEqual(Array.from(a.data as Float32Array));
  });
});

describe('encodeNpy / encodeNpz round trips', () => {
  const cases: [string, Parameters<typeof encodeNpy>[0], number[]][] = [
    ['float32', new Float32Array([1.5, -2, 3.25, 0, 1e-30, -7]), [2, 3]],
    ['float64', new Float64Array([Math.PI, -0, 1e300]), [3]],
    ['int32', new Int32Array([1, -2, 2147483647, -2147483648]), [2, 1, 2]],
    ['uint8', new Uint8Array([0, 255, 7]), [3]],
    ['int8', new Int8Array([-128, 127]), [2]],
    ['int64', new BigInt64Array([-(2n ** 63n), 2n ** 53n + 1n]), [1, 2]],
    ['float32', new Float32Array([42]), []],
    ['float32', new Float32Array(0), [4, 0]],
  ];

  it.each(cases.map(([dtype, data, shape]) => [`${dtype} [${shape.join(', ')}]`, dtype, data, shape] as const))(
    '%s',
    (_, dtype, data, shape) => {
    const bytes = encodeNpy(data, shape);
    // NumPy's own layout: version 1.0, header ending in '\n', data starting at a multiple of 64.
    expect(Array.from(bytes.subarray(0, 8))).toEqual([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
    const dataStart = 10 + (bytes[8]! | (bytes[9]! << 8));
    expect(dataStart % 64).toBe(0);
    expect(bytes[dataStart - 1]).toBe(0x0a);
    const a = parseNpy(bytes);
    expect(a.dtype).toBe(dtype);
    expect(a.shape).toEqual(shape);
    expect(a.data).toEqual(data);
    },
  );

  it('writes the header NumPy writes', () => {
    const bytes = encodeNpy(new Float32Array(12), [3, 4]);
    expect(bytes.length).toBe(fixture('float32_2d.npy').length);
    expect(bytes.subarray(0, 128)).toEqual(fixture('float32_2d.npy').subarray(0, 128));
    const f64 = encodeNpy(new Float64Array(5), [5]);
    const header = new TextDecoder().decode(f64.subarray(10, 10 + (f64[8]! | (f64[9]! << 8))));
    expect(header.trimEnd()).toBe("{'descr': '<f8', 'fortran_order': False, 'shape': (5,), }");
  });

  it('encodes from a view at an offset', () => {
    const backing = new Float32Array([9, 1, 2, 3, 9]);
    expect(parseNpy(encodeNpy(backing.subarray(1, 4), [3])).data).toEqual(new Float32Array([1, 2, 3]));
  });

  it('refuses a shape that does not match the data', () => {
    expect(() => encodeNpy(new Float32Array(5), [2, 3])).toThrow(/shape \[2, 3\] has 6 elements but data has 5/);
    expect(() => encodeNpy(new Float32Array(2), [-1, -2])).toThrow(NpyFormatError);
  });

  it('round trips an archive, keeping key order and matching what NumPy wrote', async () => {
    const weight = new Float32Array([-1, -0.6, -0.2, 0.2, 0.6, 1].map(Math.fround));
    const bias = new BigInt64Array([7n, -8n, 9n]);
    const bytes = encodeNpz({ weight: { data: weight, shape: [2, 3] }, bias: { data: bias, shape: [3] }, 'é x': { data: new Uint8Array([1]), shape: [1] } });
    const arrays = await parseNpz(bytes);
    expect([...arrays.keys()]).toEqual(['weight', 'bias', 'é x']);
    expect(arrays.get('weight')).toEqual({ dtype: 'float32', shape: [2, 3], data: weight, fortranOrder: false });
    expect(arrays.get('bias')!.data).toEqual(bias);
    expect(arrays.get('é x')!.data).toEqual(new Uint8Array([1]));
    // Same .npy payloads as np.savez produced for the same arrays.
    const numpy = await parseNpz(fixture('stored.npz'));
    expect(numpy.get('bias')).toEqual(arrays.get('bias'));
  });

  it('writes an empty archive', async () => {
    expect((await parseNpz(encodeNpz({}))).size).toBe(0);
  });
});

describe('errors', () => {
  async function npzError(bytes: Uint8Array, name?: string): Promise<NpyFormatError> {
    const err = await parseNpz(bytes, name).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(NpyFormatError);
    return err as NpyFormatError;
  }

  function npyError(bytes: Uint8Array, name?: string): NpyFormatError {
    try {
      parseNpy(bytes, name);
    } catch (e) {
      expect(e).toBeInstanceOf(NpyFormatError);
      return e as NpyFormatError;
    }
    throw new Error('expected parseNpy to throw');
  }

  it('is an AutoquantError with code NPY_FORMAT', () => {
    const e = npyError(new Uint8Array(3));
    expect(e).toBeInstanceOf(AutoquantError);
    expect(e.code).toBe('NPY_FORMAT');
    expect(e.name).toBe('NpyFormatError');
  });

  it('reports truncated data with expected and actual byte counts', () => {
    const bytes = fixture('float32_2d.npy');
    const e = npyError(bytes.subarray(0, bytes.length - 5), 'w.npy');
    expect(e.message).toBe("w.npy: truncated data: float32 (3, 4) needs 48 bytes after the 128-byte header, found 43");
  });

  it('reports a truncated header', () => {
    expect(npyError(fixture('float32_2d.npy').subarray(0, 60), 'h.npy').message).toMatch(/^h\.npy: truncated header/);
  });

  it('reports bad magic', () => {
    const e = npyError(new TextEncoder().encode('PK\x03\x04 this is not numpy'), 'x.npy');
    expect(e.message).toMatch(/^x\.npy: not a \.npy file \(expected magic bytes .* found 50 4b 03 04 20 74\)/);
  });

  it('reports an unsupported format version', () => {
    const bytes = fixture('float32_2d.npy').slice();
    bytes[6] = 4;
    expect(npyError(bytes).message).toMatch(/^array: unsupported \.npy format version 4\.0/);
  });

  it('refuses object and string arrays, saying why', () => {
    expect(npyError(fixture('object.npy'), 'object.npy').message).toMatch(
      /^object\.npy: unsupported dtype '\|O' \(object arrays \(pickled Python objects\)\); supported: float16/,
    );
    expect(npyError(fixture('unicode.npy'), 'unicode.npy').message).toMatch(
      /^unicode\.npy: unsupported dtype '<U2' \(unicode string arrays\)/,
    );
  });

  it('reports a malformed header', () => {
    const good = encodeNpy(new Float32Array(2), [2]);
    const text = (s: string) => {
      const b = good.slice();
      const h = new TextEncoder().encode(s.padEnd((b[8]! | (b[9]! << 8)) - 1, ' ') + '\n');
      b.set(h, 10);
      return b;
    };
    expect(npyError(text("{'descr': '<f4', 'shape': (2,), }")).message).toMatch(/bad header: missing key 'fortran_order'/);
    expect(npyError(text("{'descr': '<f4', 'fortran_order': False, 'shape': (2,,), }")).message).toMatch(/bad header: unexpected character/);
    expect(npyError(text("{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }")).message).toMatch(/'shape' must be a tuple/);
    expect(npyError(text("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }")).message).toMatch(/structured arrays/);
  });

  it('reports a truncated zip', async () => {
    const bytes = fixture('stored.npz');
    const e = await npzError(bytes.subarray(0, bytes.length - 30), 'model.npz');
    expect(e.message).toMatch(/^model\.npz: bad zip: no end-of-central-directory record in \d+ bytes \(not a zip file, or truncated\)/);
  });

  it('reports an entry cut short and a corrupted entry, naming the entry', async () => {
    // Drop bytes from the middle: the directory survives but points past the end.
    const bytes = fixture('stored.npz');
    const cut = new Uint8Array(bytes.length - 100);
    cut.set(bytes.subarray(0, 100));
    cut.set(bytes.subarray(200), 100);
    expect((await npzError(cut)).message).toMatch(/^archive: bad zip: central directory \(110 bytes at offset 422\) lies past the end of the 454-byte file$/);

    const flipped = bytes.slice();
    flipped[200] ^= 0xff; // inside weight.npy's data
    expect((await npzError(flipped)).message).toMatch(/entry 'weight\.npy' fails its CRC-32 check/);

    const deflated = fixture('deflated.npz').slice();
    deflated[80] ^= 0x55;
    expect((await npzError(deflated)).message).toMatch(/^archive: bad zip: entry 'weight\.npy' (has corrupt deflated data|fails its CRC-32)/);
  });

  it('names the archive and entry when an .npy inside it is bad', async () => {
    const bytes = encodeNpz({ w: { data: new Float32Array(1), shape: [1] } });
    // Break the magic of w.npy (after the 30-byte local header and 5-byte name), then fix both CRC fields.
    bytes[35 + 1] = 0;
    const npyLength = bytes.length - 22 - (46 + 5) - 35;
    const crc = crc32(bytes.subarray(35, 35 + npyLength));
    const view = new DataView(bytes.buffer);
    view.setUint32(14, crc, true);
    view.setUint32(35 + npyLength + 16, crc, true);
    const e = await npzError(bytes, 'a.npz');
    expect(e.message).toMatch(/^a\.npz\/w\.npy: not a \.npy file/);
  });

  it('is not fooled by random bytes', async () => {
    expect((await npzError(new Uint8Array(10))).message).toMatch(/no end-of-central-directory/);
    expect(npyError(new Uint8Array(0)).message).toMatch(/found nothing/);
  });
});

describe('the autoquant/npy subpath', () => {
  it('exports the NumPy functions and error the docs list, and they round-trip', async () => {
    const root = await import('../../src/subpaths/npy.js');
    for (const name of ['parseNpy', 'parseNpz', 'toFloat32', 'encodeNpy', 'encodeNpz', 'NpyFormatError'] as const) expect(typeof root[name], name).toBe('function');
    const bytes = root.encodeNpz({ x: { data: Float32Array.of(1, 2, 3, 4), shape: [2, 2] } });
    const parsed = await root.parseNpz(bytes);
    expect(Array.from(root.toFloat32(parsed.get('x')!))).toEqual([1, 2, 3, 4]);
    expect(() => root.parseNpy(new Uint8Array(4), 'bad.npy')).toThrow(root.NpyFormatError);
  });
});
