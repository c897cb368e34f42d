_base_ = './faster-rcnn_epsanet-s50_fpn_1x_coco.py'

model = dict(
    backbone=dict(
        depth=101,
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/epsanet101_small_imagenet.pth.tar')))
