"""One generic attention ResNet for mmdet, and the per-paper backbones as thin presets of it.

:class:`AttentionResNet` is mmdet's :class:`~mmdet.models.backbones.ResNet` (whole API kept: ``depth``,
``out_indices``, ``frozen_stages``, ``norm_cfg``, ``norm_eval``, ``with_cp``, ``style``, ``plugins``,
``init_cfg`` ...) plus one argument, ``attention``: an attention layer config applied to every block at
the SE position, i.e. after the last conv + norm and before the residual add. It is implemented with
mmdet's own plugin mechanism (``position='after_conv3'`` in a Bottleneck); for depths 18/34 a
:class:`AttnBasicBlock` adds plugin support to mmdet's BasicBlock (which refuses plugins).

Module names equal the official (torchvision-layout) checkpoints: ``conv1``, ``bn1``,
``layerS.B.{conv,bn}{1,2,3}``, ``layerS.0.downsample.{0,1}`` and ``layerS.B.<se|eca|sa|cbam|sge>.*``, so an
official ImageNet checkpoint loads with ``init_cfg=dict(type='Pretrained', checkpoint=PATH)`` (mmengine
strips the ``module.`` prefix; the classifier ``fc.*`` is the only unused key).
"""
import os.path as osp
from typing import Optional, Sequence, Union

import torch.utils.checkpoint as cp
from mmcv.cnn import build_plugin_layer
from mmdet.models.backbones.resnet import BasicBlock, Bottleneck, ResNet
from mmdet.models.layers import ResLayer
from mmdet.registry import MODELS

from ...fused import fused_forward, gated_residual
from ...layers import get_attention_layer
from ...layers.eca import RELEASED_KERNEL_SIZES
from ...utils.checkpoint import safe_checkpoint_loading
from ...utils.pretrained import check_pretrained

AttentionCfg = Union[None, dict, Sequence[Optional[dict]]]


def _last_plugin_plus_identity(block, out, identity, names, norm, norm_input):
    """Run the plugins ``names`` on ``out = norm(norm_input)`` and add ``identity``.

    The last plugin and the add are :func:`mmattn.fused.gated_residual`: the result may take the memory
    of ``out`` (a tensor this block created, as mmdet's Bottleneck adds its identity in place), and when
    that plugin alone reads the norm output (and not under ``with_cp``, which keeps nothing anyway) the
    fused form may rebuild ``out`` from ``norm_input`` in the backward instead of keeping it.
    """
    if not names:
        return out + identity
    for name in names[:-1]:
        out = getattr(block, name)(out)
    sole = len(names) == 1 and not block.with_cp
    return gated_residual(getattr(block, names[-1]), out, identity, overwrite_x=True,
                          bn=norm if sole else None, bn_input=norm_input if sole else None)


class AttnBasicBlock(BasicBlock):
    """mmdet's BasicBlock with plugins.

    Positions: ``after_conv1`` (after conv1, norm1, ReLU) and ``after_conv2`` (after conv2 and norm2,
    before the residual add: the SE position, as in the official SE/ECA/CBAM BasicBlocks). Plugins get
    ``in_channels=planes``.
    """
    plugin_positions = ('after_conv1', 'after_conv2')
    last_norm = 'norm2'

    def __init__(self, inplanes, planes, plugins=None, **kwargs):
        super().__init__(inplanes, planes, plugins=None, **kwargs)
        self.plugin_names = {position: [] for position in self.plugin_positions}
        for plugin in plugins or []:
            position = plugin.get('position')
            if position not in self.plugin_positions:
                raise ValueError(f'AttnBasicBlock: plugin position {position!r} is not supported; a '
                                 f'BasicBlock has {self.plugin_positions} (after_conv2 = before the '
                                 'residual add)')
            cfg = dict(plugin['cfg'])
            name, layer = build_plugin_layer(cfg, in_channels=planes, postfix=cfg.pop('postfix', ''))
            if hasattr(self, name):
                raise ValueError(f'AttnBasicBlock: duplicate plugin name {name!r}; give it a postfix')
            self.add_module(name, layer)
            self.plugin_names[position].append(name)

    def _plugins(self, x, position):
        for name in self.plugin_names[position]:
            x = getattr(self, name)(x)
        return x

    def forward(self, x):

        def _inner_forward(x):
            out = self._plugins(self.relu(self.norm1(self.conv1(x))), 'after_conv1')
            identity = x if self.downsample is None else self.downsample(x)
            out = self.conv2(out)
            return _last_plugin_plus_identity(self, self.norm2(out), identity, self.plugin_names['after_conv2'],
                                              self.norm2, out)

        if self.with_cp and x.requires_grad:
            out = cp.checkpoint(_inner_forward, x, use_reentrant=False)
        else:
            out = _inner_forward(x)
        return self.relu(out)


class AttnBottleneck(Bottleneck):
    """mmdet's Bottleneck, checkpointed without re-entrance when ``with_cp=True``.

    mmdet calls ``torch.utils.checkpoint`` in the deprecated re-entrant mode, which rejects a block
    whose last plugin returns a view (e.g. a reshape) and warns on every call; the non-re-entrant
    mode has neither problem. The last after_conv3 plugin and the residual add go through
    :func:`mmattn.fused.gated_residual`, and conv2 through :func:`mmattn.fused.fused_forward` (EPSANet's
    PSA has a fused form). Everything else (plugins, names, strides) is mmdet's.
    """
    last_norm = 'norm3'

    def forward(self, x):

        def _inner_forward(x):
            out = self.relu(self.norm1(self.conv1(x)))
            if self.with_plugins:
                out = self.forward_plugin(out, self.after_conv1_plugin_names)
            out = self.relu(self.norm2(fused_forward(self.conv2, out)))
            if self.with_plugins:
                out = self.forward_plugin(out, self.after_conv2_plugin_names)
            out = self.conv3(out)
            identity = x if self.downsample is None else self.downsample(x)
            names = self.after_conv3_plugin_names if self.with_plugins else []
            return _last_plugin_plus_identity(self, self.norm3(out), identity, names, self.norm3, out)

        if self.with_cp and x.requires_grad:
            out = cp.checkpoint(_inner_forward, x, use_reentrant=False)
        else:
            out = _inner_forward(x)
        return self.relu(out)


def _check_stage_arguments(owner: str, kwargs: dict) -> None:
    """num_stages, strides, dilations, out_indices and frozen_stages, checked with messages (mmdet's
    ResNet answers them with a bare AssertionError, or an AttributeError when freezing)."""
    num_stages = kwargs.get('num_stages', 4)
    if not isinstance(num_stages, int) or not 1 <= num_stages <= 4:
        raise ValueError(f'{owner}: num_stages={num_stages!r} must be 1, 2, 3 or 4')
    for name, default in (('strides', (1, 2, 2, 2)), ('dilations', (1, 1, 1, 1))):
        value = kwargs.get(name, default)
        if len(value) != num_stages:
            raise ValueError(f'{owner}: {name}={tuple(value)} has {len(value)} entries but num_stages='
                             f'{num_stages}; give one per stage, e.g. {name}={tuple(default[:num_stages])}')
    out_indices = tuple(kwargs.get('out_indices', (0, 1, 2, 3)))
    bad = [i for i in out_indices if not isinstance(i, int) or not 0 <= i < num_stages]
    if bad or not out_indices:
        raise ValueError(f'{owner}: out_indices={out_indices} is invalid: stage indices count from 0, so with '
                         f'num_stages={num_stages} they are 0..{num_stages - 1} (e.g. out_indices='
                         f'{tuple(range(num_stages))}); got {bad or "none"}')
    frozen = kwargs.get('frozen_stages', -1)
    if not isinstance(frozen, int) or not -1 <= frozen <= num_stages:
        raise ValueError(f'{owner}: frozen_stages={frozen!r} must be -1 (nothing frozen), 0 (the stem only) or '
                         f'1..{num_stages} (the stem and that many stages; num_stages={num_stages})')


def _block_position(block) -> str:
    """The SE position of ``block``: after its last conv + norm, before the residual add."""
    return 'after_conv3' if issubclass(block, Bottleneck) else 'after_conv2'


def _resolve_layer(layer_type, owner: str):
    """A layer class from an mmattn name, or from mmdet's registry (any registered plugin)."""
    try:
        return get_attention_layer(layer_type)
    except ValueError as err:
        cls = MODELS.get(layer_type) if isinstance(layer_type, str) else None
        if cls is None:
            raise ValueError(f'{owner}: attention type {layer_type!r} is neither an mmattn attention '
                             f'layer nor registered in mmdet MODELS. {err}') from None
        return cls


@MODELS.register_module()
class AttentionResNet(ResNet):
    """ResNet with an attention layer in every block (SE position).

    Args:
        depth (int): 18, 34, 50, 101 or 152 (subclasses may support fewer).
        attention (dict | Sequence[dict | None] | None): the attention layer config, e.g.
            ``dict(type='SE', reduction=16)``, applied in every stage; or one config (or None for no
            attention) per stage, e.g. ECA's per-stage kernels. ``type`` is an mmattn layer name
            (see :data:`mmattn.layers.ATTENTION_LAYERS`) or any plugin registered in mmdet MODELS;
            the layer receives ``in_channels`` (4 * planes for Bottleneck, planes for BasicBlock).
        contract_dilation (bool): mmseg's option for dilated stages: the first block of a stage with
            dilation d > 1 uses d // 2. That block stands for a strided one, whose 3 x 3 taps lie one
            input pixel apart, i.e. d // 2 pixels apart on the dilated network's finer grid.
            Changes no parameter. Default False (mmdet's ResNet has no such option).
        **kwargs: every argument of mmdet's ``ResNet``.

    Zero-init of the last norm (``zero_init_residual``) and every other ResNet behaviour are mmdet's.
    """
    arch_settings = {
        18: (AttnBasicBlock, (2, 2, 2, 2)),
        34: (AttnBasicBlock, (3, 4, 6, 3)),
        50: (AttnBottleneck, (3, 4, 6, 3)),
        101: (AttnBottleneck, (3, 4, 23, 3)),
        152: (AttnBottleneck, (3, 8, 36, 3)),
    }
    #: said in the error for a depth missing from ``arch_settings``
    depth_note = ''

    def __init__(self, depth, attention: AttentionCfg = None, plugins=None, contract_dilation: bool = False,
                 **kwargs):
        owner = type(self).__name__
        if depth not in self.arch_settings:
            note = f' ({self.depth_note})' if self.depth_note else ''
            raise KeyError(f'{owner}: invalid depth {depth!r}; supported depths: '
                           f'{sorted(self.arch_settings)}{note}')
        block = self.arch_settings[depth][0]
        _check_stage_arguments(owner, kwargs)
        num_stages = kwargs.get('num_stages', 4)
        attention_plugins = self._attention_plugins(attention, num_stages, _block_position(block), owner)
        # make_res_layer() runs inside ResNet.__init__ and needs these, so they are set first
        # (plain attributes are allowed before nn.Module.__init__).
        self.block_kwargs = self.extra_block_kwargs()
        self.contract_dilation = contract_dilation
        self.zero_init_last = (kwargs.get('zero_init_residual', True) and kwargs.get('init_cfg') is None
                               and kwargs.get('pretrained') is None)
        all_plugins = list(plugins or []) + attention_plugins
        super().__init__(depth, plugins=all_plugins or None, **kwargs)
        self.attention = attention

    def extra_block_kwargs(self) -> dict:
        """Keyword arguments passed to every block in addition to mmdet's (for custom blocks)."""
        return {}

    def init_weights(self) -> None:
        """mmdet's init, after checking a ``Pretrained`` checkpoint: a local file that does not exist
        fails saying how to get it, and one that does not cover every tensor of this backbone with the
        right shape fails with a summary (mmengine would load it partly, with a warning only), unless
        ``init_cfg.allow_partial=True``."""
        owner = type(self).__name__
        cfgs = list(self.init_cfg) if isinstance(self.init_cfg, (list, tuple)) else [self.init_cfg]
        for i, cfg in enumerate(cfgs):
            if not (isinstance(cfg, dict) and cfg.get('type') == 'Pretrained'):
                continue
            ckpt = cfg.get('checkpoint')
            if isinstance(ckpt, str) and '://' not in ckpt and not osp.isfile(ckpt):
                raise FileNotFoundError(
                    f'{owner}: ImageNet-pretrained checkpoint {ckpt!r} (init_cfg.checkpoint) does not exist '
                    f'(cwd: {osp.abspath(".")}). Download the official ImageNet weights of {owner} and convert '
                    'them with tools/model_converters/official2mmattn.py (see configs/README.md, '
                    '"Pretrained backbones"), pass another path with --cfg-options '
                    'model.backbone.init_cfg.checkpoint=PATH, or train from scratch with '
                    'model.backbone.init_cfg=None.')
            check_pretrained(self, cfg, owner)
            # mmengine's PretrainedInit takes no allow_partial argument.
            cfgs[i] = {k: v for k, v in cfg.items() if k != 'allow_partial'}
        self.init_cfg = cfgs if isinstance(self.init_cfg, (list, tuple)) else cfgs[0]
        with safe_checkpoint_loading():  # weights-only, also for URLs and outside mmattn's tools
            super().init_weights()

    @staticmethod
    def _attention_plugins(attention: AttentionCfg, num_stages: int, position: str, owner: str) -> list:
        """Turn ``attention`` into mmdet plugin entries, one per stage that has attention."""
        if attention is None:
            return []
        if isinstance(attention, dict):
            per_stage = [attention] * num_stages
        elif isinstance(attention, (list, tuple)):
            per_stage = list(attention)
            if len(per_stage) != num_stages:
                raise ValueError(f'{owner}: attention has {len(per_stage)} per-stage configs but the '
                                 f'network has num_stages={num_stages}; give one dict (or None) per stage')
        else:
            raise TypeError(f'{owner}: attention must be a dict, a list of per-stage dicts or None, got '
                            f'{type(attention).__name__}')
        plugins = []
        for i, cfg in enumerate(per_stage):
            if cfg is None:
                continue
            if not isinstance(cfg, dict) or 'type' not in cfg:
                raise ValueError(f"{owner}: attention config for stage {i} must be a dict with a 'type', "
                                 f'got {cfg!r}')
            cfg = dict(cfg, type=_resolve_layer(cfg['type'], owner))
            plugins.append(dict(cfg=cfg, position=position, stages=tuple(j == i for j in range(num_stages))))
        return plugins

    def make_res_layer(self, **kwargs):
        """mmdet's ResLayer, plus the zero-init of the last norm for blocks mmdet does not know and
        ``contract_dilation`` (the first block rebuilt with half the dilation: same names and shapes)."""
        block = kwargs['block']
        if kwargs.get('init_cfg') is None and self.zero_init_last and block not in (BasicBlock, Bottleneck):
            kwargs['init_cfg'] = dict(type='Constant', val=0, override=dict(name=block.last_norm))
        layer = ResLayer(**kwargs, **self.block_kwargs)
        dilation = kwargs.get('dilation', 1)
        if self.contract_dilation and dilation > 1:
            layer[0] = ResLayer(**dict(kwargs, num_blocks=1, dilation=dilation // 2), **self.block_kwargs)[0]
        return layer


@MODELS.register_module()
class SEResNet(AttentionResNet):
    """SE-ResNet (Hu et al., CVPR 2018): :class:`~mmattn.layers.SEModule` in every block.

    Args:
        reduction (int): Default 16.
        bias (bool): FC biases. True (default): paper, timm, mmpretrain (SE-R50 28,088,024 params with
            the ImageNet head). False: moskomule/senet.pytorch checkpoints (28,071,976).
    """

    def __init__(self, depth, reduction: int = 16, bias: bool = True, **kwargs):
        super().__init__(depth, attention=dict(type='SE', reduction=reduction, bias=bias), **kwargs)


@MODELS.register_module()
class ECAResNet(AttentionResNet):
    """ECA-ResNet (Wang et al., CVPR 2020): :class:`~mmattn.layers.ECAModule` in every block.

    Args:
        kernel_size (None | int | str | Sequence[int]): per-stage 1-D kernel sizes. None (default): the
            released checkpoints' lists (R-18 3577, R-34 3357, R-50 3557, R-101/152 3357); an int for all
            stages; ``'adaptive'`` for the paper's rule on each stage's channels; or one odd int per stage.
    """
    #: kernel sizes of the officially released ImageNet checkpoints, by depth
    released_kernel_sizes = RELEASED_KERNEL_SIZES

    def __init__(self, depth, kernel_size=None, **kwargs):
        num_stages = kwargs.get('num_stages', 4)
        if kernel_size is None:
            kernel_sizes = self.released_kernel_sizes.get(depth, (3, ) * 4)[:num_stages]
        elif isinstance(kernel_size, (int, str)):
            kernel_sizes = (kernel_size, ) * num_stages
        else:
            kernel_sizes = tuple(kernel_size)
            if len(kernel_sizes) != num_stages:
                raise ValueError(f'ECAResNet: kernel_size={kernel_size!r} has {len(kernel_sizes)} entries; '
                                 f'give one per stage (num_stages={num_stages}), an int or "adaptive"')
        self.kernel_sizes = kernel_sizes
        super().__init__(depth, attention=[dict(type='ECA', kernel_size=k) for k in kernel_sizes], **kwargs)


@MODELS.register_module()
class SAResNet(AttentionResNet):
    """SA-ResNet (Zhang & Yang, ICASSP 2021): :class:`~mmattn.layers.ShuffleAttention` in every block.

    Depths 50/101/152 only: the official code has no BasicBlock, and a 64-channel stage cannot hold the
    2 x 64 half-groups of the default G = 64.

    Args:
        groups (int): G. Default 64. Stage channels (4 * planes) must be divisible by 2G.
    """
    arch_settings = {d: s for d, s in AttentionResNet.arch_settings.items() if s[0] is AttnBottleneck}
    depth_note = 'SA-Net has no BasicBlock variant; 64-channel stages cannot be split into 2 x 64 groups'

    def __init__(self, depth, groups: int = 64, **kwargs):
        super().__init__(depth, attention=dict(type='SA', groups=groups), **kwargs)


@MODELS.register_module()
class CBAMResNet(AttentionResNet):
    """CBAM-ResNet (Woo et al., ECCV 2018): :class:`~mmattn.layers.CBAM` in every block.

    Args:
        reduction (int): channel-gate MLP reduction. Default 16.
        no_spatial (bool): drop the spatial gate. Default False.
        **cbam_kwargs: other :class:`~mmattn.layers.CBAM` arguments (``pool_types``,
            ``spatial_pool_order``, ``bn_momentum``, ``spatial_kernel_size``); defaults are official.
    """
    cbam_args = ('pool_types', 'spatial_pool_order', 'bn_momentum', 'spatial_kernel_size')

    def __init__(self, depth, reduction: int = 16, no_spatial: bool = False, **kwargs):
        cbam = {k: kwargs.pop(k) for k in self.cbam_args if k in kwargs}
        super().__init__(depth, attention=dict(type='CBAM', reduction=reduction, no_spatial=no_spatial,
                                               **cbam), **kwargs)


@MODELS.register_module()
class SGEResNet(AttentionResNet):
    """SGE-ResNet (Li et al., 2019): :class:`~mmattn.layers.SpatialGroupEnhance` in every block.

    Args:
        groups (int): G. Default 64. Stage channels must be divisible by G.
    """

    def __init__(self, depth, groups: int = 64, **kwargs):
        super().__init__(depth, attention=dict(type='SGE', groups=groups), **kwargs)
