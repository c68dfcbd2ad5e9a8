/**
 * Learning-rate schedules, set once at the start of each epoch (epochs are 1-based).
 *
 *   stepLr(0.03, 121, [120, 160, 200], 0.1)  // 0.003: upstream's step schedule
 *   cosineLr(0.03, 70, 70, 0.1)              // 0.00003: the cosine one ends at base * rate^3
 *   epochLr({ learning_rate, lr_decay_epochs, lr_decay_rate, cosine, epochs }, epoch)  // the run's choice
 */

/**
 * Step schedule of upstream (HobbitLong/CMC util.adjust_learning_rate): lr = base · rate^(number of decay
 * epochs d with epoch > d).
 */
export function stepLr(base: number, epoch1Based: number, decayEpochs: readonly number[], rate: number): number {
  let steps = 0;
  for (const d of decayEpochs) if (epoch1Based > d) steps++;
  // Same expression as upstream: base * rate ** steps (steps = 0 leaves base untouched).
  return steps > 0 ? base * rate ** steps : base;
}

/**
 * Cosine schedule of the same author's later code (HobbitLong/SupContrast util.adjust_learning_rate with
 * --cosine): from base down to eta_min = base · rate³ over `epochs`, by epoch, as
 * eta_min + (base − eta_min) · (1 + cos(π · epoch / epochs)) / 2, so its first epoch already runs a little
 * below base and its last at eta_min.
 */
export function cosineLr(base: number, epoch1Based: number, epochs: number, rate: number): number {
  const etaMin = base * rate ** 3;
  return etaMin + ((base - etaMin) * (1 + Math.cos((Math.PI * epoch1Based) / epochs))) / 2;
}

/** The settings a run's schedule reads (TrainConfig and SupervisedConfig alike). */
export interface LrSchedule {
  learning_rate: number;
  lr_decay_epochs: readonly number[];
  lr_decay_rate: number;
  /** Cosine instead of the step schedule (lr_decay_epochs unused). */
  cosine: boolean;
  epochs: number;
}

/** The learning rate of one epoch under the run's schedule. */
export function epochLr(s: LrSchedule, epoch1Based: number): number {
  return s.cosine
    ? cosineLr(s.learning_rate, epoch1Based, s.epochs, s.lr_decay_rate)
    : stepLr(s.learning_rate, epoch1Based, s.lr_decay_epochs, s.lr_decay_rate);
}
