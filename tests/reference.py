"""Independent reference for the official models, written from the spec, not from mmattn's code.

* :func:`official_state_dict` makes a random checkpoint with the exact key names and shapes of the
  official implementations (torchvision-layout trunk + each repo's attention keys), as its training
  scripts save it: ``{'epoch', 'arch', 'state_dict', 'best_acc1', 'optimizer'}`` with ``module.``.
* :func:`reference_forward` runs the official network in eval mode with plain functional ops and
  deliberately straightforward (slow, loop-based where the math is per group) attention formulas.
* ``ref_*`` functions are the per-module formulas, also used to check mmattn's fast layers.

Everything is float64-friendly; tests compare at float32 tolerances.
"""
import math
from collections import OrderedDict

import torch
import torch.nn.functional as F

BLOCKS = {18: ('basic', (2, 2, 2, 2)), 34: ('basic', (3, 4, 6, 3)), 50: ('bottleneck', (3, 4, 6, 3)),
          101: ('bottleneck', (3, 4, 23, 3)), 152: ('bottleneck', (3, 8, 36, 3))}
ECA_RELEASED = {18: (3, 5, 7, 7), 34: (3, 3, 5, 7), 50: (3, 5, 5, 7), 101: (3, 3, 5, 7), 152: (3, 3, 5, 7)}


# ----------------------------------------------------------------------------- per-module formulas
def ref_se(x, w1, b1, w2, b2):
    """SE: x * sigmoid(W2 relu(W1 GAP(x) + b1) + b2); biases may be None."""
    z = x.mean(dim=(2, 3))
    h = torch.relu(z @ w1.t() + (0 if b1 is None else b1))
    s = torch.sigmoid(h @ w2.t() + (0 if b2 is None else b2))
    return x * s[:, :, None, None]


def ref_eca(x, w):
    """ECA written out: u_c = sum_j w_j z_{c+j-(k-1)/2}, zero outside [0, C)."""
    k = w.numel()
    w = w.reshape(k)
    z = x.mean(dim=(2, 3))
    c = z.shape[1]
    u = torch.zeros_like(z)
    for j in range(k):
        shift = j - (k - 1) // 2
        lo, hi = max(0, -shift), min(c, c - shift)
        u[:, lo:hi] += w[j] * z[:, lo + shift:hi + shift]
    return x * torch.sigmoid(u)[:, :, None, None]


def ref_sa(x, groups, cweight, cbias, sweight, sbias, gn_weight, gn_bias, eps=1e-5):
    """Shuffle attention, looping over samples and groups, then the 2-group channel shuffle by index."""
    b, c, h, w = x.shape
    cg, half = c // groups, c // (2 * groups)
    cw, cb, sw, sb = (t.reshape(half, 1, 1) for t in (cweight, cbias, sweight, sbias))
    y = torch.empty_like(x)
    for n in range(b):
        for g in range(groups):
            xg = x[n, g * cg:(g + 1) * cg]
            x0, x1 = xg[:half], xg[half:]
            s = x0.mean(dim=(1, 2), keepdim=True)
            y0 = x0 * torch.sigmoid(cw * s + cb)
            mu = x1.mean(dim=(1, 2), keepdim=True)
            var = ((x1 - mu)**2).mean(dim=(1, 2), keepdim=True)
            gn = (x1 - mu) / torch.sqrt(var + eps) * gn_weight.reshape(half, 1, 1) + gn_bias.reshape(half, 1, 1)
            y1 = x1 * torch.sigmoid(sw * gn + sb)
            y[n, g * cg:(g + 1) * cg] = torch.cat([y0, y1])
    index = [(o % 2) * (c // 2) + o // 2 for o in range(c)]
    return y[:, index]


def ref_cbam(x, w1, b1, w2, b2, conv_w, bn, pool_order=('max', 'mean')):
    """CBAM: channel gate (shared MLP over avg and max pools) then spatial gate (7x7 conv + BN)."""
    mlp = lambda v: torch.relu(v @ w1.t() + b1) @ w2.t() + b2  # noqa: E731
    a = torch.sigmoid(mlp(x.mean(dim=(2, 3))) + mlp(x.amax(dim=(2, 3))))
    x = x * a[:, :, None, None]
    pools = {'max': x.amax(dim=1, keepdim=True), 'mean': x.mean(dim=1, keepdim=True)}
    m = torch.cat([pools[p] for p in pool_order], dim=1)
    s = F.conv2d(m, conv_w, padding=conv_w.shape[-1] // 2)
    s = F.batch_norm(s, bn['running_mean'], bn['running_var'], bn['weight'], bn['bias'], False, 0.0, 1e-5)
    return x * torch.sigmoid(s)


def ref_sge(x, groups, weight, bias, eps=1e-5):
    """SGE per sample and group: score vs. the group's mean feature, normalised (unbiased std)."""
    b, c, h, w = x.shape
    cg = c // groups
    y = torch.empty_like(x)
    for n in range(b):
        for g in range(groups):
            xg = x[n, g * cg:(g + 1) * cg]
            score = (xg * xg.mean(dim=(1, 2), keepdim=True)).sum(0)
            score = (score - score.mean()) / (score.flatten().std(unbiased=True) + eps)
            y[n, g * cg:(g + 1) * cg] = xg * torch.sigmoid(score * weight.flatten()[g] + bias.flatten()[g])
    return y


def ref_psa(x, convs, fc1_w, fc1_b, fc2_w, fc2_b, stride=1, groups=(1, 4, 8, 16)):
    """PSA: grouped multi-kernel branches over all inputs, one shared SE, softmax over branches,
    concatenation in REVERSED branch order (official)."""
    feats = [F.conv2d(x, w, stride=stride, padding=w.shape[-1] // 2, groups=g) for w, g in zip(convs, groups)]

    def se(f):
        z = f.mean(dim=(2, 3), keepdim=True)
        return torch.sigmoid(F.conv2d(torch.relu(F.conv2d(z, fc1_w, fc1_b)), fc2_w, fc2_b))

    e = torch.stack([se(f) for f in feats], dim=1)
    a = torch.exp(e) / torch.exp(e).sum(dim=1, keepdim=True)
    return torch.cat([feats[i] * a[:, i] for i in reversed(range(len(feats)))], dim=1)


# ----------------------------------------------------------------------------- official checkpoints
def _attention_keys(arch, prefix, c, planes, stage, depth, se_bias):
    """(key, shape) pairs of the attention of one block with C = c output channels."""
    if arch == 'se':
        r = c // 16
        keys = [(f'{prefix}se.fc.0.weight', (r, c))] + ([(f'{prefix}se.fc.0.bias', (r, ))] if se_bias else [])
        keys += [(f'{prefix}se.fc.2.weight', (c, r))] + ([(f'{prefix}se.fc.2.bias', (c, ))] if se_bias else [])
        return keys
    if arch == 'eca':
        return [(f'{prefix}eca.conv.weight', (1, 1, ECA_RELEASED[depth][stage]))]
    if arch == 'sa':
        half = c // 128
        return [(f'{prefix}sa.{n}', (1, half, 1, 1)) for n in ('cweight', 'cbias', 'sweight', 'sbias')] + \
               [(f'{prefix}sa.gn.weight', (half, )), (f'{prefix}sa.gn.bias', (half, ))]
    if arch == 'cbam':
        r = c // 16
        p = f'{prefix}cbam.'
        return [(p + 'ChannelGate.mlp.1.weight', (r, c)), (p + 'ChannelGate.mlp.1.bias', (r, )),
                (p + 'ChannelGate.mlp.3.weight', (c, r)), (p + 'ChannelGate.mlp.3.bias', (c, )),
                (p + 'SpatialGate.spatial.conv.weight', (1, 2, 7, 7))] + _bn_keys(p + 'SpatialGate.spatial.bn', 1)
    if arch == 'sge':
        return [(f'{prefix}sge.weight', (1, 64, 1, 1)), (f'{prefix}sge.bias', (1, 64, 1, 1))]
    return []


def _bn_keys(name, c):
    return [(f'{name}.weight', (c, )), (f'{name}.bias', (c, )), (f'{name}.running_mean', (c, )),
            (f'{name}.running_var', (c, )), (f'{name}.num_batches_tracked', ())]


def official_keys(arch, depth, se_bias=False):
    """Ordered (key, shape) list of the official ``arch`` in {'resnet', 'se', 'eca', 'sa', 'cbam',
    'sge', 'epsa'} at ``depth``, head included, without the ``module.`` prefix."""
    kind, blocks = BLOCKS[depth]
    keys = [('conv1.weight', (64, 3, 7, 7))] + _bn_keys('bn1', 64)
    inplanes = 64
    for s, n in enumerate(blocks):
        planes = 64 * 2**s
        out = planes * (4 if kind == 'bottleneck' else 1)
        for i in range(n):
            p = f'layer{s + 1}.{i}.'
            cin = inplanes if i == 0 else out
            if kind == 'bottleneck':
                keys += [(p + 'conv1.weight', (planes, cin, 1, 1))] + _bn_keys(p + 'bn1', planes)
                if arch == 'epsa':
                    q = planes // 4
                    keys += [(p + f'conv2.conv_{j + 1}.weight', (q, planes // g, k, k))
                             for j, (k, g) in enumerate(zip((3, 5, 7, 9), (1, 4, 8, 16)))]
                    keys += [(p + 'conv2.se.fc1.weight', (q // 16, q, 1, 1)), (p + 'conv2.se.fc1.bias', (q // 16, )),
                             (p + 'conv2.se.fc2.weight', (q, q // 16, 1, 1)), (p + 'conv2.se.fc2.bias', (q, ))]
                else:
                    keys += [(p + 'conv2.weight', (planes, planes, 3, 3))]
                keys += _bn_keys(p + 'bn2', planes) + [(p + 'conv3.weight', (out, planes, 1, 1))]
                keys += _bn_keys(p + 'bn3', out)
            else:
                keys += [(p + 'conv1.weight', (planes, cin, 3, 3))] + _bn_keys(p + 'bn1', planes)
                keys += [(p + 'conv2.weight', (planes, planes, 3, 3))] + _bn_keys(p + 'bn2', planes)
            if i == 0 and (s > 0 or cin != out):
                keys += [(p + 'downsample.0.weight', (out, cin, 1, 1))] + _bn_keys(p + 'downsample.1', out)
            keys += _attention_keys(arch, p, out, planes, s, depth, se_bias)
        inplanes = out
    return keys + [('fc.weight', (1000, inplanes)), ('fc.bias', (1000, ))]


def official_state_dict(arch, depth, seed=0, se_bias=False):
    """Random weights in the official layout; BN statistics non-trivial so eval mode matters."""
    g = torch.Generator().manual_seed(seed)
    sd = OrderedDict()
    for key, shape in official_keys(arch, depth, se_bias):
        if key.endswith('num_batches_tracked'):
            sd[key] = torch.tensor(1000)
        elif key.endswith('running_var'):
            sd[key] = torch.rand(shape, generator=g) + 0.5
        elif key.endswith('running_mean'):
            sd[key] = torch.randn(shape, generator=g) * 0.1
        elif len(shape) >= 2 and key.endswith('weight'):
            fan_in = math.prod(shape[1:])
            sd[key] = torch.randn(shape, generator=g) * math.sqrt(2.0 / fan_in)
        else:  # BN/GN affine, biases and SA/SGE gate parameters
            sd[key] = 1.0 + 0.2 * torch.randn(shape, generator=g) if 'weight' in key else \
                0.2 * torch.randn(shape, generator=g)
    return sd


def save_official_checkpoint(path, arch, depth, seed=0, se_bias=False):
    """Write ``path`` as the official training scripts do (DataParallel ``module.`` prefix)."""
    sd = official_state_dict(arch, depth, seed, se_bias)
    torch.save({'epoch': 100, 'arch': f'{arch}_resnet{depth}', 'best_acc1': torch.tensor(77.0),
                'state_dict': OrderedDict(('module.' + k, v) for k, v in sd.items()),
                'optimizer': {'state': {}, 'param_groups': [{'lr': 0.0, 'params': []}]}}, path)
    return sd


# ----------------------------------------------------------------------------- reference forward
def _bn(x, sd, name):
    return F.batch_norm(x, sd[name + '.running_mean'], sd[name + '.running_var'], sd[name + '.weight'],
                        sd[name + '.bias'], False, 0.0, 1e-5)


def _attention(arch, x, sd, p):
    if arch == 'se':
        return ref_se(x, sd[p + 'se.fc.0.weight'], sd.get(p + 'se.fc.0.bias'), sd[p + 'se.fc.2.weight'],
                      sd.get(p + 'se.fc.2.bias'))
    if arch == 'eca':
        return ref_eca(x, sd[p + 'eca.conv.weight'])
    if arch == 'sa':
        return ref_sa(x, 64, *(sd[p + 'sa.' + n] for n in ('cweight', 'cbias', 'sweight', 'sbias', 'gn.weight',
                                                             'gn.bias')))
    if arch == 'cbam':
        q = p + 'cbam.'
        bn = {k: sd[q + 'SpatialGate.spatial.bn.' + k] for k in ('weight', 'bias', 'running_mean', 'running_var')}
        return ref_cbam(x, sd[q + 'ChannelGate.mlp.1.weight'], sd[q + 'ChannelGate.mlp.1.bias'],
                        sd[q + 'ChannelGate.mlp.3.weight'], sd[q + 'ChannelGate.mlp.3.bias'],
                        sd[q + 'SpatialGate.spatial.conv.weight'], bn)
    if arch == 'sge':
        return ref_sge(x, 64, sd[p + 'sge.weight'], sd[p + 'sge.bias'])
    return x


def reference_forward(sd, arch, depth, x):
    """Stage outputs (layer1..layer4) of the official network in eval mode."""
    kind, blocks = BLOCKS[depth]
    x = F.max_pool2d(torch.relu(_bn(F.conv2d(x, sd['conv1.weight'], stride=2, padding=3), sd, 'bn1')), 3, 2, 1)
    outs = []
    for s, n in enumerate(blocks):
        for i in range(n):
            p = f'layer{s + 1}.{i}.'
            stride = 2 if (i == 0 and s > 0) else 1
            if kind == 'bottleneck':
                y = torch.relu(_bn(F.conv2d(x, sd[p + 'conv1.weight']), sd, p + 'bn1'))
                if arch == 'epsa':
                    convs = [sd[p + f'conv2.conv_{j}.weight'] for j in range(1, 5)]
                    y = ref_psa(y, convs, sd[p + 'conv2.se.fc1.weight'], sd[p + 'conv2.se.fc1.bias'],
                                sd[p + 'conv2.se.fc2.weight'], sd[p + 'conv2.se.fc2.bias'], stride=stride)
                else:
                    y = F.conv2d(y, sd[p + 'conv2.weight'], stride=stride, padding=1)
                y = torch.relu(_bn(y, sd, p + 'bn2'))
                y = _bn(F.conv2d(y, sd[p + 'conv3.weight']), sd, p + 'bn3')
            else:
                y = torch.relu(_bn(F.conv2d(x, sd[p + 'conv1.weight'], stride=stride, padding=1), sd, p + 'bn1'))
                y = _bn(F.conv2d(y, sd[p + 'conv2.weight'], padding=1), sd, p + 'bn2')
            y = _attention(arch, y, sd, p)
            if p + 'downsample.0.weight' in sd:
                x = _bn(F.conv2d(x, sd[p + 'downsample.0.weight'], stride=stride), sd, p + 'downsample.1')
            x = torch.relu(y + x)
        outs.append(x)
    return outs
