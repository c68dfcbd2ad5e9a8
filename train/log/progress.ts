/**
 * Progress for long work: items/s, ETA and caller-supplied fields, as one line. On a terminal the line
 * is rewritten in place; elsewhere (CI, files) one line is printed on the first update, then every `every`
 * updates or after `everySec` seconds of silence, whichever comes first (slow steps still show life).
 */
export class Progress {
  private readonly start = performance.now();
  private done = 0;
  private updates = 0;
  private lastPrint = performance.now();
  private readonly tty: boolean;

  constructor(
    private readonly total: number,
    private readonly label: string,
    private readonly opts: { every?: number; everySec?: number; stream?: NodeJS.WriteStream; unit?: string } = {},
  ) {
    this.tty = Boolean((opts.stream ?? process.stderr).isTTY);
  }

  /** Record `n` more items done and print if due; `fields` are appended ("loss 1.23"). */
  tick(n: number, fields = ''): void {
    this.done += n;
    this.updates++;
    const last = this.done >= this.total;
    const now = performance.now();
    const due =
      this.updates === 1 ||
      this.updates % (this.opts.every ?? 10) === 0 ||
      now - this.lastPrint >= (this.opts.everySec ?? 10) * 1000;
    if (!this.tty && !last && !due) return;
    this.lastPrint = now;
    const line = this.line(fields);
    const out = this.opts.stream ?? process.stderr;
    if (this.tty) out.write(`\r\x1b[2K${line}${last ? '\n' : ''}`);
    else out.write(`${line}\n`);
  }

  line(fields = ''): string {
    const sec = (performance.now() - this.start) / 1000;
    const rate = this.done / Math.max(sec, 1e-9);
    const eta = rate > 0 ? (this.total - this.done) / rate : Infinity;
    const unit = this.opts.unit ?? 'img';
    return `${this.label} ${this.done}/${this.total} ${rate.toFixed(1)} ${unit}/s ETA ${formatDuration(eta)}${fields ? `  ${fields}` : ''}`;
  }

  get elapsedSec(): number {
    return (performance.now() - this.start) / 1000;
  }
}

export function formatDuration(sec: number): string {
  if (!Number.isFinite(sec)) return '--';
  const s = Math.round(sec);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  return h ? `${h}h${String(m).padStart(2, '0')}m` : m ? `${m}m${String(r).padStart(2, '0')}s` : `${r}s`;
}

/**
 * One line, a few steps into the run, with the measured time per step and what it means for an epoch and
 * for the whole run; a run that would take more than a day says so and names a smaller setting.
 */
export class RunEstimate {
  /** Steps timed before the estimate (the first one, with its warm-up, is left out when there are more). */
  static readonly STEPS = 4;
  private readonly t0 = performance.now();
  private readonly ends: number[] = [];

  constructor(
    private readonly stepsPerEpoch: number,
    private readonly epochs: number,
    private readonly backend: string,
    private readonly log: (line: string) => void,
  ) {}

  step(): void {
    if (this.ends.length >= RunEstimate.STEPS) return;
    this.ends.push(performance.now());
    const n = this.ends.length;
    if (n < Math.min(RunEstimate.STEPS, this.stepsPerEpoch)) return;
    const secPerStep = (n > 1 ? this.ends[n - 1] - this.ends[0] : this.ends[0] - this.t0) / 1000 / Math.max(n - 1, 1);
    const epochSec = secPerStep * this.stepsPerEpoch;
    const runSec = epochSec * this.epochs;
    const perStep = secPerStep < 10 ? `${(secPerStep * 1000).toFixed(0)} ms` : formatDuration(secPerStep);
    let line = `[cmc] estimate from the first ${n} steps: ${perStep} per step, ~${formatDuration(epochSec)} per epoch, ~${formatDuration(runSec)} for ${this.epochs} epoch${this.epochs === 1 ? '' : 's'}`;
    if (runSec > 24 * 3600) {
      line += `; that is ${(runSec / 86400).toFixed(1)} days on ${this.backend}: for a first run try --model alexnet_mini --image_size 64 --epochs 20 (or npx cmc train --demo)`;
    }
    this.log(line);
  }
}
