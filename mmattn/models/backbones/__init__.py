from .attention_resnet import (AttentionResNet, AttnBasicBlock, AttnBottleneck, CBAMResNet, ECAResNet, SAResNet,
                               SEResNet, SGEResNet)
from .epsanet import EPSABottleneck, EPSANet

__all__ = [
    'AttentionResNet', 'AttnBasicBlock', 'AttnBottleneck', 'CBAMResNet', 'ECAResNet', 'EPSABottleneck', 'EPSANet',
    'SAResNet', 'SEResNet', 'SGEResNet'
]
