# Semantic FPN with a narrow SA-ResNet-50 (Shuffle Attention); everything but the attention is as in
# the SE config. groups=8: Shuffle Attention splits the channels into 2 * groups parts, which the
# 64-channel first stage must hold.
_base_ = './fpn_se-r50_toy-seg.py'

model = dict(backbone=dict(type='SAResNet', groups=8))
