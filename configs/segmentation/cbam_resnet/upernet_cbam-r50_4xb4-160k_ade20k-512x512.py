_base_ = 'mmseg::upernet/upernet_r50_4xb4-160k_ade20k-512x512.py'
custom_imports = dict(imports=['mmattn.models'], allow_failed_imports=False)

# mmseg's R-50 UPerNet (ADE20K 512x512, 160k) with the backbone swapped. mmseg's own backbone here
# is ResNetV1c (deep stem); the attention backbones keep the torchvision-style stem of their
# ImageNet checkpoints, as ../resnet/upernet_r50b_4xb4-160k_ade20k-512x512.py does for ResNet.
# ImageNet init: official Jongchan/attention-module (R-50) / PytorchInsight checkpoint, loads as released.
# `pretrained=None`: mmseg's model-level `pretrained` would conflict with the backbone's init_cfg.
model = dict(
    pretrained=None,
    backbone=dict(
        type='CBAMResNet',
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/RESNET50_CBAM_new_name_wrap.pth')))
