/**
 * A Python that can import torch, for the tests that check the PyTorch trainer (torch_ddp/): $CMC_PYTHON, else
 * `python3`, else Debian's /usr/bin/python3 (CI installs python3-torch through .ci/run). Null when none can, so
 * the tests skip with a message instead of failing on machines without PyTorch.
 */
import { spawnSync } from 'node:child_process';

let found: string | null | undefined;

export function pythonWithTorch(): string | null {
  if (found !== undefined) return found;
  const candidates = [process.env.CMC_PYTHON, 'python3', '/usr/bin/python3'].filter((p): p is string => !!p);
  found =
    candidates.find((py) => spawnSync(py, ['-c', 'import torch'], { stdio: 'ignore', timeout: 60_000 }).status === 0) ??
    null;
  return found;
}

export const NO_TORCH =
  'no python3 with torch here (apt-get install python3-torch, or set CMC_PYTHON); the PyTorch trainer checks are skipped';

/** True when `py` can import every module named (e.g. the trainer's torchvision and PIL). */
export function pythonHas(py: string, modules: string[]): boolean {
  return (
    spawnSync(py, ['-c', modules.map((m) => `import ${m}`).join('; ')], { stdio: 'ignore', timeout: 60_000 }).status ===
    0
  );
}

/** Run a Python script with arguments; returns stdout, throws with stderr on a non-zero exit. */
export function runPython(py: string, args: string[], opts: { timeoutMs?: number; cwd?: string } = {}): string {
  const r = spawnSync(py, args, {
    encoding: 'utf8',
    cwd: opts.cwd,
    timeout: opts.timeoutMs ?? 120_000,
    maxBuffer: 64 << 20,
  });
  if (r.status !== 0) throw new Error(`${py} ${args.join(' ')} exited ${r.status ?? r.signal}:\n${r.stderr}`);
  return r.stdout;
}
