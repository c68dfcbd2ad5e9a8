/**
 * The small shared utilities the server and the browser use: the GPU device-node check (core/util/gpu.ts)
 * and the top-k of a score row (core/util/top_k.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hasGpuDevice, type GpuProbeEnv } from '../../core/util/gpu.ts';
import { topK } from '../../core/util/top_k.ts';

function fakeEnv(platform: NodeJS.Platform, files: string[], dri?: string[]): GpuProbeEnv {
  return {
    platform,
    exists: (p) => files.includes(p),
    readdir: (p) => {
      if (p !== '/dev/dri' || !dri) throw Object.assign(new Error(`ENOENT: ${p}`), { code: 'ENOENT' });
      return dri;
    },
  };
}

test('hasGpuDevice: Linux needs /dev/nvidia0 or a DRM render node; macOS and Windows have no device nodes', () => {
  assert.equal(hasGpuDevice(fakeEnv('linux', [])), false, 'no /dev/dri at all');
  assert.equal(hasGpuDevice(fakeEnv('linux', [], ['card0', 'by-path'])), false, 'a card node only (no render node)');
  assert.equal(hasGpuDevice(fakeEnv('linux', [], ['card0', 'renderD128'])), true);
  assert.equal(hasGpuDevice(fakeEnv('linux', ['/dev/nvidia0'])), true);
  assert.equal(hasGpuDevice(fakeEnv('darwin', [])), true);
  assert.equal(hasGpuDevice(fakeEnv('win32', [])), true);
  assert.equal(typeof hasGpuDevice(), 'boolean', 'the real machine answers without throwing');
});

test('topK: best first, ties by the lower index, k clipped to the length', () => {
  assert.deepEqual(topK([0.1, 0.5, 0.5, 0.2], 3), [
    { index: 1, value: 0.5 },
    { index: 2, value: 0.5 },
    { index: 3, value: 0.2 },
  ]);
  assert.deepEqual(
    topK(new Float32Array([3, 1, 2]), 10).map((r) => r.index),
    [0, 2, 1],
  );
  assert.deepEqual(
    topK([7, 7, 7, 7], 2).map((r) => r.index),
    [0, 1],
  );
  assert.deepEqual(topK([], 5), []);
  assert.deepEqual(topK([1, 2], 0), []);
});
