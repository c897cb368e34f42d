_base_ = './faster-rcnn_eca-r50_fpn_1x_coco.py'

model = dict(
    backbone=dict(
        depth=101,
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/eca_resnet101_k3357.pth.tar')))
