"""EPSANet (Zhang et al., ACCV 2022): ResNet whose Bottleneck conv2 is a PSA module.

Only the "Small" network is defined by the official code (murufeng/EPSANet @ 9955041): kernels
(3, 5, 7, 9), conv groups (1, 4, 8, 16), SE reduction 16 on P/4 channels. With the ImageNet head it has
22,561,715 (EPSANet-50) and 38,900,279 (EPSANet-101) parameters, as the README says.

"Large" (README: 27.90M / 49.59M) is not in the code. The maintainer says it uses conv groups
(32, 32, 32, 32) with wider conv1/PSA channels, but no natural width/group setting reproduces the
published counts, so it is not offered as a preset; ``conv_groups=(32, 32, 32, 32)`` builds the
documented groups on the Small widths. No official weights exist for either variant.
"""
from mmdet.registry import MODELS

from ...layers import PSAModule
from .attention_resnet import AttentionResNet, AttnBottleneck


class EPSABottleneck(AttnBottleneck):
    """mmdet Bottleneck with conv2 replaced by :class:`~mmattn.layers.PSAModule` (stride and dilation
    kept). Keys: ``conv2.conv_{1..4}.weight`` and ``conv2.se.fc{1,2}.*``, as in the official code."""

    def __init__(self, inplanes, planes, conv_kernels=(3, 5, 7, 9), conv_groups=(1, 4, 8, 16),
                 psa_reduction=16, dcn=None, **kwargs):
        if dcn is not None:
            raise ValueError('EPSANet: dcn cannot be used, PSA replaces the 3x3 conv that DCN would '
                             'deform; remove dcn/stage_with_dcn')
        super().__init__(inplanes, planes, **kwargs)
        self.conv2 = PSAModule(planes, planes, stride=self.conv2_stride, conv_kernels=conv_kernels,
                               conv_groups=conv_groups, reduction=psa_reduction, dilation=self.dilation)


@MODELS.register_module()
class EPSANet(AttentionResNet):
    """EPSANet backbone (depths 50/101/152), mmdet ResNet API.

    Args:
        conv_kernels (Sequence[int]): PSA branch kernels. Default (3, 5, 7, 9).
        conv_groups (Sequence[int]): PSA branch conv groups. Default (1, 4, 8, 16) (Small).
        psa_reduction (int): reduction of the SE weight module shared by the branches. Default 16.
        **kwargs: mmdet ResNet arguments; ``attention`` may add an extra attention layer (not in the
            official model).
    """
    arch_settings = {
        50: (EPSABottleneck, (3, 4, 6, 3)),
        101: (EPSABottleneck, (3, 4, 23, 3)),
        152: (EPSABottleneck, (3, 8, 36, 3)),
    }
    depth_note = 'the official EPSANet has no BasicBlock variant'

    def __init__(self, depth, conv_kernels=(3, 5, 7, 9), conv_groups=(1, 4, 8, 16), psa_reduction=16,
                 **kwargs):
        self.psa_cfg = dict(conv_kernels=tuple(conv_kernels), conv_groups=tuple(conv_groups),
                            psa_reduction=psa_reduction)
        super().__init__(depth, **kwargs)

    def extra_block_kwargs(self) -> dict:
        return self.psa_cfg
