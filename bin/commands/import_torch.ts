import { Command } from 'commander';
import path from 'node:path';
import { importTorchCheckpoint } from '../../train/interop/torch_checkpoint.ts';
import { writeCheckpoint } from '../../core/formats/checkpoint.ts';

/**
 * `cmc import-torch --checkpoint runs/x/current.safetensors [--out runs/x/current.ckpt] [--model NAME] [--json]`:
 * converts a checkpoint of the PyTorch DDP trainer (torch_ddp/) into this project's checkpoint format, for
 * `cmc probe`, `cmc knn`, `cmc export` and `cmc serve`.
 */
export function addImportTorchCommand(program: Command): void {
  program
    .command('import-torch')
    .description(
      "convert a checkpoint of the PyTorch DDP trainer (torch_ddp/, .safetensors) into cmc's checkpoint format",
    )
    .requiredOption('--checkpoint <file>', "the PyTorch trainer's checkpoint (runs/<name>/current.safetensors)")
    .option('--out <file>', 'where to write the cmc checkpoint (default: next to it, with .ckpt)')
    .option('--model <name>', 'refuse unless the checkpoint holds this architecture (e.g. resnet50v1)')
    .option('--json', 'print a JSON summary on stdout', false)
    .action((o: { checkpoint: string; out?: string; model?: string; json: boolean }) => {
      const ckpt = importTorchCheckpoint(o.checkpoint, { expectArch: o.model });
      const out =
        o.out ??
        path.join(path.dirname(o.checkpoint), `${path.basename(o.checkpoint).replace(/\.safetensors$/, '')}.ckpt`);
      writeCheckpoint(out, ckpt);
      const h = ckpt.header as { spec: { arch: string }; epoch: number; step: number };
      if (o.json)
        console.log(
          JSON.stringify({
            out,
            arch: h.spec.arch,
            epoch: h.epoch,
            step: h.step,
            tensors: Object.keys(ckpt.tensors).length,
          }),
        );
      else console.log(out);
    });
}
