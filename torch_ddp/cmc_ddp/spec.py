"""Interpreter of the network description language (core/network/layers.ts) in PyTorch.

The one PyTorch interpreter of the description: the DDP trainer and bench/torch_train_step.py (the speed
reference) both build their networks with it. Beyond the modules, shape checks and init it adds what the
trainer needs: every layer kind not listed in SUPPORTED is refused with the layer named, and each
encoder keeps a map from state_dict names (the description's `name` + '.weight' etc., as core/network/shapes.ts
paramShapes) to tensors, in PyTorch layout, for checkpoints. BatchNorm is CrossRankBatchNorm (dist.py), which
is torch.nn.BatchNorm with the batch statistics taken over every rank's part of the global batch.

Shapes here are per example, NCHW: [C, H, W] or [C].
"""
import json
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .dist import CrossRankBatchNorm

SUPPORTED = ('conv2d', 'batchnorm', 'relu', 'maxpool', 'global_avgpool', 'flatten', 'linear', 'l2norm', 'residual')


class UnsupportedSpec(ValueError):
    """The description uses something this interpreter cannot build."""


def conv_out(n, k, s, p):
    # PyTorch floor mode, as shapes.ts convOut
    return (n + 2 * p - k) // s + 1


class L2Norm(nn.Module):
    def forward(self, x):
        # upstream's Normalize(2): no epsilon
        return x / x.norm(dim=1, keepdim=True)


class NCHWFlatten(nn.Module):
    def forward(self, x):
        return x.reshape(x.shape[0], -1)


class GlobalAvgPool(nn.Module):
    def forward(self, x):
        return x.mean(dim=(2, 3))


class Residual(nn.Module):
    def __init__(self, body, shortcut):
        super().__init__()
        self.body = body
        self.shortcut = shortcut  # empty Sequential = identity

    def forward(self, x):
        return F.relu(self.body(x) + self.shortcut(x))


def _field(layer, key, where):
    if key not in layer:
        raise UnsupportedSpec(f"{where}: layer {layer.get('kind')} {layer.get('name', '')} has no '{key}'")
    return layer[key]


def build_layers(layers, shape, state, where):
    """(nn.Sequential, output shape); `state` collects state_dict name -> tensor (parameters and BN buffers)."""
    mods = []
    for layer in layers:
        kind = layer.get('kind') if isinstance(layer, dict) else None
        name = layer.get('name', '') if isinstance(layer, dict) else ''
        if kind not in SUPPORTED:
            label = f"'{kind}'" + (f" (layer '{name}')" if name else '')
            raise UnsupportedSpec(f"{where}: the PyTorch interpreter does not support layer kind {label}; "
                                  f"supported kinds: {', '.join(SUPPORTED)}")
        if kind == 'conv2d':
            if len(shape) != 3:
                raise UnsupportedSpec(f"{where}: conv2d {name} needs a map input, got {shape}")
            c, h, w = shape
            k, s, p = _field(layer, 'kernel', where), _field(layer, 'stride', where), _field(layer, 'pad', where)
            bias = bool(layer.get('bias', False))
            m = nn.Conv2d(c, _field(layer, 'filters', where), k, stride=s, padding=p, bias=bias)
            init = layer.get('init', 'kaiming_uniform')
            if init == 'he_normal':
                with torch.no_grad():
                    m.weight.normal_(0.0, math.sqrt(2.0 / (k * k * layer['filters'])))
            elif init != 'kaiming_uniform':  # kaiming_uniform(a=sqrt(5)) is PyTorch's default already
                raise UnsupportedSpec(f"{where}: conv2d {name}: unsupported init '{init}'")
            state[name + '.weight'] = m.weight
            if bias:
                state[name + '.bias'] = m.bias
            shape = [layer['filters'], conv_out(h, k, s, p), conv_out(w, k, s, p)]
            if shape[1] < 1 or shape[2] < 1:
                raise UnsupportedSpec(f"{where}: conv2d {name}: input {h}x{w} too small")
        elif kind == 'batchnorm':
            m = CrossRankBatchNorm(shape[0], eps=layer.get('eps', 1e-5), momentum=layer.get('momentum', 0.1))
            if layer.get('zeroInit'):
                with torch.no_grad():
                    m.weight.zero_()
            state[name + '.weight'] = m.weight
            state[name + '.bias'] = m.bias
            state[name + '.running_mean'] = m.running_mean
            state[name + '.running_var'] = m.running_var
        elif kind == 'relu':
            m = nn.ReLU(inplace=False)
        elif kind == 'maxpool':
            if len(shape) != 3:
                raise UnsupportedSpec(f"{where}: maxpool needs a map input, got {shape}")
            size, s, p = _field(layer, 'size', where), _field(layer, 'stride', where), _field(layer, 'pad', where)
            m = nn.MaxPool2d(size, stride=s, padding=p)
            shape = [shape[0], conv_out(shape[1], size, s, p), conv_out(shape[2], size, s, p)]
        elif kind == 'global_avgpool':
            m = GlobalAvgPool()
            shape = [shape[0]]
        elif kind == 'flatten':
            m = NCHWFlatten()
            shape = [math.prod(shape)]
        elif kind == 'linear':
            if len(shape) != 1:
                raise UnsupportedSpec(f"{where}: linear {name} needs a flat input, got {shape}")
            bias = bool(layer.get('bias', False))
            m = nn.Linear(shape[0], _field(layer, 'units', where), bias=bias)  # PyTorch default init
            state[name + '.weight'] = m.weight
            if bias:
                state[name + '.bias'] = m.bias
            shape = [layer['units']]
        elif kind == 'l2norm':
            m = L2Norm()
        else:  # residual
            body, bshape = build_layers(_field(layer, 'body', where), shape, state, where)
            sc, sshape = build_layers(_field(layer, 'shortcut', where), shape, state, where)
            if bshape != sshape:
                raise UnsupportedSpec(f"{where}: residual {name}: body gives {bshape} but shortcut {sshape}")
            m = Residual(body, sc)
            shape = bshape
        mods.append(m)
    return nn.Sequential(*mods), shape


class Encoder(nn.Module):
    def __init__(self, enc, image_size, where):
        super().__init__()
        shape = [enc['inChannels'], image_size, image_size]
        self.state = {}
        blocks = []
        for i, block in enumerate(enc['blocks']):
            seq, shape = build_layers(block['layers'], shape, self.state, f"{where} block {i + 1} ({block.get('name', '')})")
            blocks.append(seq)
        self.blocks = nn.Sequential(*blocks)
        self.out_shape = shape

    def forward(self, x, layer=None):
        """Output of block `layer` (1-based, upstream's numbering); default the last (the embedding)."""
        if layer is None:
            return self.blocks(x)
        for b in self.blocks[:layer]:
            x = b(x)
        return x


class CMC(nn.Module):
    """One encoder per view of the CmcSpec; the input is the views' channels concatenated (NCHW)."""

    def __init__(self, spec):
        super().__init__()
        if not isinstance(spec.get('views'), list) or not spec['views']:
            raise UnsupportedSpec('the network description has no views')
        self.spec = spec
        self.channels = [v['channels'] for v in spec['views']]
        self.view_names = [v['name'] for v in spec['views']]
        self.encoders = nn.ModuleList()
        for v in spec['views']:
            enc = v['encoder']
            if enc['inChannels'] != len(v['channels']):
                raise UnsupportedSpec(f"view {v['name']}: inChannels {enc['inChannels']} != {len(v['channels'])} channels")
            e = Encoder(enc, spec['imageSize'], f"view {v['name']}")
            if e.out_shape != [spec['featDim']]:
                raise UnsupportedSpec(f"view {v['name']}: encoder output {e.out_shape} is not [featDim {spec['featDim']}]")
            self.encoders.append(e)

    def forward(self, x, layer=None):
        outs = []
        for ch, enc in zip(self.channels, self.encoders):
            if ch == list(range(ch[0], ch[0] + len(ch))):
                xv = x[:, ch[0]:ch[0] + len(ch)]
            else:
                xv = x[:, ch]
            outs.append(enc(xv, layer))
        return outs

    def named_state(self):
        """`${view}.${state_dict name}` -> tensor (PyTorch layout), as CmcModel names them (train/model/cmc.ts)."""
        out = {}
        for vname, enc in zip(self.view_names, self.encoders):
            for k, t in enc.state.items():
                out[f'{vname}.{k}'] = t
        return out


def load_spec(path):
    try:
        with open(path) as f:
            spec = json.load(f)
    except (OSError, ValueError) as e:
        raise UnsupportedSpec(f'{path}: cannot read the network description ({e})') from e
    for key in ('arch', 'imageSize', 'featDim', 'views'):
        if key not in spec:
            raise UnsupportedSpec(f"{path}: not a CmcSpec (no '{key}'); write one with `cmc spec --model NAME`")
    return spec
