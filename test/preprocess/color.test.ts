/**
 * RGB → Lab / YCbCr and the view normalisation against golden.json's skimage 0.19 values.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import {
  LAB_MEAN,
  LAB_STD,
  YCBCR_MEAN,
  YCBCR_STD,
  normalize,
  rgbPixelToLab,
  rgbPixelToYCbCr,
  rgbToLab,
  rgbToYCbCr,
  toViewInput,
} from '../../core/preprocess/color.ts';

const G = JSON.parse(fs.readFileSync(new URL('../fixtures/golden.json', import.meta.url), 'utf8'));
const pixels: number[][] = G.rgb2lab.pixels_uint8_rgb;
const rgb = Uint8Array.from(pixels.flat());

function within(a: number, b: number, tol: number, what: string): void {
  assert.ok(Math.abs(a - b) <= tol * Math.max(Math.abs(b), 1), `${what}: ${a} vs ${b}`);
}

describe('color', () => {
  it('rgbPixelToLab reproduces skimage rgb2lab in float64', () => {
    pixels.forEach((p, i) => {
      const lab = rgbPixelToLab(p[0], p[1], p[2]);
      for (let c = 0; c < 3; c++) within(lab[c], G.rgb2lab.lab[i][c], 1e-12, `pixel ${p} channel ${c}`);
    });
  });

  it('rgbToLab stores float32 (HWC) within float32 rounding of skimage', () => {
    const lab = rgbToLab(rgb);
    assert.ok(lab instanceof Float32Array);
    assert.equal(lab.length, rgb.length);
    G.rgb2lab.lab.flat().forEach((v: number, k: number) => {
      assert.equal(
        lab[k],
        Math.fround(rgbPixelToLab(rgb[k - (k % 3)], rgb[k - (k % 3) + 1], rgb[k - (k % 3) + 2])[k % 3]),
      );
      within(lab[k], v, 1e-6, `lab[${k}]`);
    });
    // The sRGB a/b extremes that define the normalisation constants.
    const green = rgbPixelToLab(0, 255, 0),
      magenta = rgbPixelToLab(255, 0, 255);
    const blue = rgbPixelToLab(0, 0, 255),
      yellow = rgbPixelToLab(255, 255, 0);
    within(green[1], -86.183, 1e-5, 'green a');
    within(magenta[1], 98.233, 1e-5, 'magenta a');
    within(blue[2], -107.857, 1e-5, 'blue b');
    within(yellow[2], 94.478, 1e-5, 'yellow b');
    // Writes into a given buffer.
    const out = new Float32Array(rgb.length);
    assert.equal(rgbToLab(rgb, out), out);
    assert.deepEqual(out, lab);
    assert.throws(() => rgbToLab(new Uint8Array(4)), /multiple of 3/);
  });

  it('normalisation constants and toViewInput(Lab) match golden lab_normalized', () => {
    assert.deepEqual([...LAB_MEAN], G.rgb2lab.normalize_mean);
    assert.deepEqual([...LAB_STD], G.rgb2lab.normalize_std);
    const x = toViewInput(new Uint8ClampedArray(rgb), 'Lab');
    G.rgb2lab.lab_normalized.flat().forEach((v: number, k: number) => within(x[k], v, 1e-6, `normalized[${k}]`));
    // Same as normalising the float32 Lab up to one float32 rounding.
    const viaLab = normalize(rgbToLab(rgb), LAB_MEAN, LAB_STD);
    viaLab.forEach((v, k) => within(v, x[k], 1e-6, `two-step[${k}]`));
    assert.equal(x[0], -1, 'black L maps to -1');
    within(x[3], 1, 1e-7, 'white L maps to 1');
  });

  it('rgbToYCbCr follows skimage rgb2ycbcr', () => {
    assert.deepEqual(rgbPixelToYCbCr(0, 0, 0), [16, 128, 128]);
    const w = rgbPixelToYCbCr(255, 255, 255);
    within(w[0], 235, 1e-12, 'white Y');
    within(w[1], 128, 1e-12, 'white Cb');
    within(w[2], 128, 1e-12, 'white Cr');
    const r = rgbPixelToYCbCr(255, 0, 0);
    within(r[0], 16 + 65.481, 1e-12, 'red Y');
    within(r[1], 128 - 37.797, 1e-12, 'red Cb');
    within(r[2], 128 + 112, 1e-12, 'red Cr');
    const y = rgbToYCbCr(Uint8Array.from([255, 0, 0, 0, 0, 0]));
    assert.deepEqual(Array.from(y), [r[0], r[1], r[2], 16, 128, 128].map(Math.fround));
    const v = toViewInput(Uint8Array.from([255, 0, 0]), 'YCbCr');
    for (let c = 0; c < 3; c++) assert.equal(v[c], Math.fround((r[c] - YCBCR_MEAN[c]) / YCBCR_STD[c]));
  });

  it('normalize handles any channel count and rejects mismatches', () => {
    assert.deepEqual(Array.from(normalize(Float32Array.from([1, 2, 3, 4]), [1, 2], [2, 4])), [0, 0, 1, 0.5]);
    assert.throws(() => normalize(new Float32Array(3), [0, 0], [1, 1]), /multiple/);
    assert.throws(() => toViewInput(rgb, 'HSV' as never), /Unknown view/);
  });
});
