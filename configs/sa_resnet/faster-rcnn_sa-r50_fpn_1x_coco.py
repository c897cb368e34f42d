_base_ = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['mmattn.models'], allow_failed_imports=False)

# ImageNet init: official wofmanaf/SA-Net ImageNet checkpoint, loads as released.
model = dict(
    backbone=dict(
        type='SAResNet',
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/sa_resnet50.pth.tar')))
