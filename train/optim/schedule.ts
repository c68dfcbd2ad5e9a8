/**
 * Step learning-rate schedule of upstream (util.adjust_learning_rate), set once at the start of each epoch.
 *
 *   stepLr(0.03, 121, [120, 160, 200], 0.1)  // 0.003
 *
 * Epochs are 1-based; lr = base · rate^(number of decay epochs d with epoch > d).
 */
export function stepLr(base: number, epoch1Based: number, decayEpochs: readonly number[], rate: number): number {
  let steps = 0;
  for (const d of decayEpochs) if (epoch1Based > d) steps++;
  // Same expression as upstream: base * rate ** steps (steps = 0 leaves base untouched).
  return steps > 0 ? base * rate ** steps : base;
}
