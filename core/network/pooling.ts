/**
 * Adaptive pooling's bin rule (PyTorch's AdaptiveMaxPool2d / AdaptiveAvgPool2d), the one definition read by
 * the probe's tfjs pooling (train/eval/pooling.ts) and the ONNX emitter (train/export/emit.ts); the tfjs
 * graph exporter translates the emitter's nodes, so it follows the same bins. Pure: no tfjs.
 *
 *   adaptiveBins(7, 5);   // [[0, 2], [1, 3], [2, 5], [4, 6], [5, 7]]
 */

/** AdaptiveMaxPool2d or AdaptiveAvgPool2d (upstream `models/LinearModel.py`: max for AlexNet, avg for ResNet). */
export type PoolType = 'max' | 'avg';

/** Bin i covers cells [floor(i*in/out), ceil((i+1)*in/out)); bins overlap when out does not divide in. */
export function adaptiveBins(inSize: number, outSize: number): [number, number][] {
  if (!(Number.isInteger(inSize) && Number.isInteger(outSize) && inSize > 0 && outSize > 0)) {
    throw new RangeError(`adaptive pooling: sizes must be positive integers (in ${inSize}, out ${outSize})`);
  }
  return Array.from({ length: outSize }, (_, i) => [
    Math.floor((i * inSize) / outSize),
    Math.ceil(((i + 1) * inSize) / outSize),
  ]);
}
