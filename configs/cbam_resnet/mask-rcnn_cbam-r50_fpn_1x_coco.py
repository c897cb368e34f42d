_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['mmattn.models'], allow_failed_imports=False)

# ImageNet init: official Jongchan/attention-module (R-50) / PytorchInsight ImageNet checkpoint, loads as released.
model = dict(
    backbone=dict(
        type='CBAMResNet',
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/RESNET50_CBAM_new_name_wrap.pth')))
