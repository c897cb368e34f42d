# Mask R-CNN with a narrow SA-ResNet-50 (Shuffle Attention); everything but
# the attention is as in the SE config. Shuffle Attention splits the channels
# into 2 * groups parts, so groups=8 fits the 64-channel first stage.
_base_ = './mask-rcnn_se-r50_fpn_toy-coco.py'

model = dict(backbone=dict(type='SAResNet', groups=8))
