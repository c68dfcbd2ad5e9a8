import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { stepLr } from '../../train/optim/schedule.ts';

const G = JSON.parse(fs.readFileSync(new URL('../fixtures/golden.json', import.meta.url), 'utf8'));

describe('stepLr', () => {
  for (const name of ['pretrain', 'linear_probe'] as const) {
    it(`reproduces the golden ${name} samples exactly`, () => {
      const s = G.lr_schedule[name];
      s.epochs.forEach((e: number, i: number) =>
        assert.equal(stepLr(s.base, e, s.decay_epochs, s.rate), s.lr[i], `epoch ${e}`),
      );
    });
  }
  it('counts only decay epochs strictly below the epoch, in any order', () => {
    assert.equal(stepLr(1, 5, [], 0.1), 1);
    assert.equal(stepLr(1, 11, [20, 10], 0.5), 0.5);
    assert.equal(stepLr(1, 10, [20, 10], 0.5), 1);
    assert.equal(stepLr(1, 21, [20, 10], 0.5), 0.25);
  });
});
