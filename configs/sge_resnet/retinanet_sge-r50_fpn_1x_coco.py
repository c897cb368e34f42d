_base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['mmattn.models'], allow_failed_imports=False)

# ImageNet init: official implus/PytorchInsight SGE-ResNet ImageNet checkpoint, loads as released.
model = dict(
    backbone=dict(
        type='SGEResNet',
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/sge_resnet50_pytorchinsight.pth.tar')))
