_base_ = 'mmseg::upernet/upernet_r50_4xb4-160k_ade20k-512x512.py'

# Plain ResNet baseline for ADE20K: mmseg's R-50 UPerNet with its ResNetV1c (deep stem) replaced by
# the torchvision-style ResNet (V1b) that the attention backbones are built on, as mmseg's own
# *_r50b-* configs do (mmseg publishes no V1b UPerNet number; its V1c one is in metafile.yml).
model = dict(pretrained='torchvision://resnet50', backbone=dict(type='ResNet'))
