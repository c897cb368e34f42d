_base_ = 'mmseg::deeplabv3plus/deeplabv3plus_r50b-d8_4xb2-80k_cityscapes-512x1024.py'
custom_imports = dict(imports=['mmattn.models'], allow_failed_imports=False)

# mmseg's R-50b-D8 baseline with the backbone swapped: same torchvision-style stem, output stride 8
# (strides, dilations, contract_dilation), SyncBN and norm_eval=False inherited unchanged.
# ImageNet init: NO official weights exist: train EPSANet-Small on ImageNet with the official main.py (its checkpoint loads as is); see configs/README.md.
# `pretrained=None`: mmseg's model-level `pretrained` would conflict with the backbone's init_cfg.
model = dict(
    pretrained=None,
    backbone=dict(
        type='EPSANet',
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/epsanet50_small_imagenet.pth.tar')))
