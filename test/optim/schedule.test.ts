import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { cosineLr, epochLr, stepLr } from '../../train/optim/schedule.ts';

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

describe('cosineLr', () => {
  // Python: eta = 0.03 * 0.1**3; eta + (0.03 - eta) * (1 + math.cos(math.pi * e / 70)) / 2 (HobbitLong/SupContrast)
  const py: [number, number][] = [
    [1, 0.0299849111021216],
    [35, 0.015015],
    [69, 4.508889787840089e-5],
    [70, 3.0000000000000008e-5],
  ];
  for (const [e, lr] of py) {
    it(`epoch ${e} of 70 matches SupContrast's formula`, () => {
      assert.ok(Math.abs(cosineLr(0.03, e, 70, 0.1) - lr) <= 1e-15, `${cosineLr(0.03, e, 70, 0.1)} vs ${lr}`);
    });
  }
  it('falls monotonically from below base to base * rate^3', () => {
    let prev = 0.03;
    for (let e = 1; e <= 70; e++) {
      const lr = cosineLr(0.03, e, 70, 0.1);
      assert.ok(lr < prev, `epoch ${e}: ${lr} >= ${prev}`);
      prev = lr;
    }
  });
});

describe('epochLr', () => {
  const s = { learning_rate: 0.1, lr_decay_epochs: [40, 50], lr_decay_rate: 0.1, epochs: 60 };
  it('picks the step schedule unless cosine', () => {
    assert.equal(epochLr({ ...s, cosine: false }, 41), stepLr(0.1, 41, [40, 50], 0.1));
    assert.equal(epochLr({ ...s, cosine: true }, 41), cosineLr(0.1, 41, 60, 0.1));
    assert.notEqual(epochLr({ ...s, cosine: true }, 41), epochLr({ ...s, cosine: false }, 41));
  });
});
