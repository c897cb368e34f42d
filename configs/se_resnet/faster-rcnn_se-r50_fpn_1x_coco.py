_base_ = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['mmattn.models'], allow_failed_imports=False)

# ImageNet init: mmpretrain SE-ResNet ImageNet weights converted with tools/model_converters/mmpretrain2mmattn.py (see configs/README.md).
model = dict(
    backbone=dict(
        type='SEResNet',
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/se-resnet50_mmpretrain_mmattn.pth')))
