/**
 * Shape inference over an EncoderSpec, shared by the tfjs builder, the exporter and the tests.
 * Shapes are per example, without the batch axis: [H, W, C] for maps (NHWC) and [C] for vectors.
 * Portable: no tfjs and no node imports.
 *
 *   inferShapes(alexnetHalf(1))[5].shape;   // [6, 6, 128]  (index 0 is the input)
 *   countParams(alexnetHalf(1));            // 14840976
 */
import {
  unreachable,
  type BatchNormSpec,
  type Conv2dSpec,
  type EncoderSpec,
  type LayerSpec,
  type LinearSpec,
} from './layers.ts';

export type Shape = number[];

export interface BlockShape {
  /** 0 = the input, 1..n = block outputs (upstream's `layer` numbering). */
  index: number;
  name: string;
  shape: Shape;
}

/** One parameter or buffer in tfjs layout. */
export interface ParamShape {
  /** `${layer.name}.weight` etc.: the PyTorch state_dict key within one encoder. */
  name: string;
  shape: number[];
  /** 'param' = trainable; 'buffer' = BN running statistics. */
  kind: 'param' | 'buffer';
  role: 'weight' | 'bias' | 'gamma' | 'beta' | 'running_mean' | 'running_var';
  /** The layer owning it (initialisation reads `init` and `zeroInit` there). */
  layer: Conv2dSpec | BatchNormSpec | LinearSpec;
  /** Fan-in of the owning conv/linear (in*k*k or in); 0 for BN. */
  fanIn: number;
}

function convOut(size: number, kernel: number, stride: number, pad: number): number {
  // PyTorch floor mode (ceil_mode=False): floor((n + 2p - k) / s) + 1.
  return Math.floor((size + 2 * pad - kernel) / stride) + 1;
}

function needMap(shape: Shape, what: string): [number, number, number] {
  if (shape.length !== 3) throw new Error(`${what} needs an [H, W, C] input, got [${shape.join(', ')}]`);
  return shape as [number, number, number];
}

/**
 * Output shape of one layer; `visit` (if given) is called for every layer with its input shape, nested
 * residual layers included, in execution order (body before shortcut).
 */
export function layerOutputShape(
  layer: LayerSpec,
  input: Shape,
  visit?: (layer: LayerSpec, input: Shape) => void,
): Shape {
  visit?.(layer, input);
  switch (layer.kind) {
    case 'conv2d': {
      const [h, w] = needMap(input, `conv2d ${layer.name}`);
      const oh = convOut(h, layer.kernel, layer.stride, layer.pad);
      const ow = convOut(w, layer.kernel, layer.stride, layer.pad);
      if (oh < 1 || ow < 1) throw new Error(`conv2d ${layer.name}: input ${h}x${w} too small`);
      return [oh, ow, layer.filters];
    }
    case 'maxpool': {
      const [h, w, c] = needMap(input, 'maxpool');
      const oh = convOut(h, layer.size, layer.stride, layer.pad);
      const ow = convOut(w, layer.size, layer.stride, layer.pad);
      if (oh < 1 || ow < 1) throw new Error(`maxpool: input ${h}x${w} too small`);
      return [oh, ow, c];
    }
    case 'batchnorm':
    case 'relu':
    case 'l2norm':
      return input.slice();
    case 'global_avgpool':
      return [needMap(input, 'global_avgpool')[2]];
    case 'flatten':
      return [input.reduce((a, b) => a * b, 1)];
    case 'linear':
      if (input.length !== 1)
        throw new Error(`linear ${layer.name} needs a flat input (add a flatten), got [${input.join(', ')}]`);
      return [layer.units];
    case 'residual': {
      let body = input;
      for (const l of layer.body) body = layerOutputShape(l, body, visit);
      let sc = input;
      for (const l of layer.shortcut) sc = layerOutputShape(l, sc, visit);
      if (body.join() !== sc.join()) {
        throw new Error(`residual ${layer.name}: body gives [${body.join(', ')}] but shortcut [${sc.join(', ')}]`);
      }
      return body;
    }
    default:
      return unreachable(layer);
  }
}

/** Input and block output shapes ([H, W, C] or [C]) for an input of inputHW (default encoder.imageSize). */
export function inferShapes(
  encoder: EncoderSpec,
  inputHW: number | [number, number] = encoder.imageSize,
): BlockShape[] {
  const [h, w] = typeof inputHW === 'number' ? [inputHW, inputHW] : inputHW;
  let shape: Shape = [h, w, encoder.inChannels];
  const out: BlockShape[] = [{ index: 0, name: 'input', shape }];
  encoder.blocks.forEach((block, i) => {
    for (const layer of block.layers) shape = layerOutputShape(layer, shape);
    out.push({ index: i + 1, name: block.name, shape });
  });
  return out;
}

/**
 * Every parameter and BN buffer, in a fixed order (execution order), in tfjs layout: conv weight
 * [kh, kw, in, out] `${name}.weight`, conv/linear bias [out] `${name}.bias`, linear weight [in, out],
 * BN gamma `${name}.weight`, beta `${name}.bias`, buffers `${name}.running_mean` / `${name}.running_var`.
 * (PyTorch's `num_batches_tracked` is not kept: momentum is fixed.) Linear input sizes depend on the
 * spatial size, so this uses encoder.imageSize.
 */
export function paramShapes(encoder: EncoderSpec): ParamShape[] {
  const out: ParamShape[] = [];
  const seen = new Set<string>();
  const push = (p: ParamShape) => {
    if (seen.has(p.name)) throw new Error(`duplicate parameter name ${p.name} in ${encoder.arch}`);
    seen.add(p.name);
    out.push(p);
  };
  const visit = (layer: LayerSpec, input: Shape) => {
    switch (layer.kind) {
      case 'conv2d': {
        const cin = input[2];
        const fanIn = cin * layer.kernel * layer.kernel;
        push({
          name: `${layer.name}.weight`,
          shape: [layer.kernel, layer.kernel, cin, layer.filters],
          kind: 'param',
          role: 'weight',
          layer,
          fanIn,
        });
        if (layer.bias)
          push({ name: `${layer.name}.bias`, shape: [layer.filters], kind: 'param', role: 'bias', layer, fanIn });
        break;
      }
      case 'linear': {
        const fanIn = input[0];
        push({
          name: `${layer.name}.weight`,
          shape: [fanIn, layer.units],
          kind: 'param',
          role: 'weight',
          layer,
          fanIn,
        });
        if (layer.bias)
          push({ name: `${layer.name}.bias`, shape: [layer.units], kind: 'param', role: 'bias', layer, fanIn });
        break;
      }
      case 'batchnorm': {
        const c = input[input.length - 1];
        push({ name: `${layer.name}.weight`, shape: [c], kind: 'param', role: 'gamma', layer, fanIn: 0 });
        push({ name: `${layer.name}.bias`, shape: [c], kind: 'param', role: 'beta', layer, fanIn: 0 });
        push({ name: `${layer.name}.running_mean`, shape: [c], kind: 'buffer', role: 'running_mean', layer, fanIn: 0 });
        push({ name: `${layer.name}.running_var`, shape: [c], kind: 'buffer', role: 'running_var', layer, fanIn: 0 });
        break;
      }
      case 'relu':
      case 'maxpool':
      case 'global_avgpool':
      case 'flatten':
      case 'l2norm':
      case 'residual':
        break;
      default:
        unreachable(layer);
    }
  };
  let shape: Shape = [encoder.imageSize, encoder.imageSize, encoder.inChannels];
  for (const block of encoder.blocks) for (const layer of block.layers) shape = layerOutputShape(layer, shape, visit);
  return out;
}

/** Number of trainable parameters (BN gamma and beta count, running statistics do not). */
export function countParams(encoder: EncoderSpec): number {
  let n = 0;
  for (const p of paramShapes(encoder)) if (p.kind === 'param') n += p.shape.reduce((a, b) => a * b, 1);
  return n;
}
