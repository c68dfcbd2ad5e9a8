import { Command, Option } from 'commander';
import fs from 'node:fs';
import { loadCmcSpec } from '../../core/network/load.ts';
import { parseViews } from '../../core/preprocess/views.ts';
import { int } from '../options.ts';

/**
 * `cmc spec --model resnet50v1 [--image_size 224] [--feat_dim 128] [--view Lab] [--views L,ab] [--out spec.json]`:
 * writes the network description (core/network/layers.ts CmcSpec) as JSON, the input of the PyTorch DDP trainer
 * (torch_ddp/) and of `--model spec.json`.
 */
export function addSpecCommand(program: Command): void {
  program
    .command('spec')
    .description("write a model's network description (CmcSpec JSON), e.g. for the PyTorch DDP trainer (torch_ddp/)")
    .option('--model <name>', 'architecture name (as cmc train --model)', 'alexnet')
    .option('--image_size <n>', 'image side in pixels', int, 224)
    .option('--feat_dim <n>', 'embedding size', int, 128)
    .addOption(
      new Option('--view <v>', 'colour space of the two default views').choices(['Lab', 'YCbCr']).default('Lab'),
    )
    .option('--views <list>', 'views (as cmc train --views)', (v: string) => parseViews(v), ['L', 'ab'])
    .option('--out <file>', 'write here instead of stdout')
    .action(
      (o: {
        model: string;
        image_size: number;
        feat_dim: number;
        view: 'Lab' | 'YCbCr';
        views: string[];
        out?: string;
      }) => {
        const spec = loadCmcSpec(o.model, {
          imageSize: o.image_size,
          featDim: o.feat_dim,
          view: o.view,
          viewNames: o.views,
        });
        const json = JSON.stringify(spec, null, 1) + '\n';
        if (o.out) fs.writeFileSync(o.out, json);
        else process.stdout.write(json);
      },
    );
}
