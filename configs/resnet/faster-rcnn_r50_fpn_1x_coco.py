# Plain ResNet baseline: mmdet's own config, unchanged (init from torchvision://resnet50).
_base_ = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'
