_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['mmattn.models'], allow_failed_imports=False)

# ImageNet init: NO official weights exist: train EPSANet-Small on ImageNet with the official main.py (its checkpoint loads as is); see configs/README.md.
model = dict(
    backbone=dict(
        type='EPSANet',
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/epsanet50_small_imagenet.pth.tar')))
