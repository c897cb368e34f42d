# Plain ResNet baseline: mmdet's own config, unchanged (init from torchvision://resnet50).
_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'
