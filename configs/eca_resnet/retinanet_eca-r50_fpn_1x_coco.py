_base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['mmattn.models'], allow_failed_imports=False)

# ImageNet init: official BangguWu/ECANet ImageNet checkpoint, loads as released (kernel sizes 3557 / 3357 by default).
model = dict(
    backbone=dict(
        type='ECAResNet',
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/eca_resnet50_k3557.pth.tar')))
