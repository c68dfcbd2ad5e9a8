/**
 * tfjs-core registers no gradients by itself: only the full `@tensorflow/tfjs` package imports
 * `@tensorflow/tfjs-core/dist/register_all_gradients`, and that ES module cannot be loaded by Node's
 * resolver (extensionless imports, a directory import). esbuild (already installed with tsx) bundles it
 * in memory on first use (~0.2 s); the bundle's registrations land in tfjs's global gradient registry,
 * shared by every copy of tfjs-core in the process. Nothing is written to disk.
 */
import * as tf from '@tensorflow/tfjs-core';
import { createRequire } from 'node:module';

let loading: Promise<void> | null = null;

export function ensureGradients(): Promise<void> {
  if (tf.getGradient('Add')) return Promise.resolve(); // tfjs-node / @tensorflow/tfjs already did it
  loading ??= (async () => {
    const { build } = await import('esbuild');
    const require = createRequire(import.meta.url);
    const entry = require.resolve('@tensorflow/tfjs-core/dist/register_all_gradients.js');
    const out = await build({
      entryPoints: [entry],
      bundle: true,
      format: 'esm',
      platform: 'node',
      write: false,
      logLevel: 'silent',
    });
    const code = out.outputFiles[0].text;
    await import('data:text/javascript;base64,' + Buffer.from(code).toString('base64'));
    if (!tf.getGradient('Add')) throw new Error('registering the tfjs gradients failed');
  })();
  return loading;
}
