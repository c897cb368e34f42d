_base_ = 'mmseg::pspnet/pspnet_r50b-d8_4xb2-80k_cityscapes-512x1024.py'
custom_imports = dict(imports=['mmattn.models'], allow_failed_imports=False)

# mmseg's R-50b-D8 baseline with the backbone swapped: same torchvision-style stem, output stride 8
# (strides, dilations, contract_dilation), SyncBN and norm_eval=False inherited unchanged.
# ImageNet init: official wofmanaf/SA-Net checkpoint, loads as released.
# `pretrained=None`: mmseg's model-level `pretrained` would conflict with the backbone's init_cfg.
model = dict(
    pretrained=None,
    backbone=dict(
        type='SAResNet',
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/sa_resnet50.pth.tar')))
