# Plain ResNet baseline: mmseg's own config, unchanged (torchvision-style stem, init from
# torchvision://resnet50); its published mIoU is the reference for the attention backbones.
_base_ = 'mmseg::pspnet/pspnet_r50b-d8_4xb2-80k_cityscapes-512x1024.py'
