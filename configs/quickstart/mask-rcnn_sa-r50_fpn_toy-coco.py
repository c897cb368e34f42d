# Mask R-CNN with a narrow SA-ResNet-50 (Shuffle Attention); everything but
# the backbone is as in the SE config. Shuffle Attention splits the channels
# into 2 * groups parts, so groups=8 fits the 64-channel first stage.
_base_ = './mask-rcnn_se-r50_fpn_toy-coco.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='SAResNet',
        depth=50,
        groups=8,
        base_channels=16,
        num_stages=3,
        strides=(1, 2, 2),
        dilations=(1, 1, 1),
        out_indices=(0, 1, 2),
        frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,
        init_cfg=None))
