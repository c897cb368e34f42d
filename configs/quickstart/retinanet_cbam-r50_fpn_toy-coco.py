# RetinaNet with a narrow CBAM-ResNet-50 (three stages, 16 base channels),
# trained from scratch on the synthetic toy COCO data (boxes only).
_base_ = [
    'mmdet::_base_/models/retinanet_r50_fpn.py',
    './_base_/toy_coco_detection.py',
    './_base_/toy_schedule.py',
    './_base_/toy_runtime.py',
]
custom_imports = dict(imports=['mmattn.models'], allow_failed_imports=False)

fpn_channels = 64

model = dict(
    backbone=dict(
        type='CBAMResNet',
        depth=50,
        base_channels=16,
        num_stages=3,
        strides=(1, 2, 2),
        dilations=(1, 1, 1),
        out_indices=(0, 1, 2),
        frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,
        init_cfg=None),
    # P3-P6 (strides 8-64): levels 1-2 of the backbone plus two extra convs.
    neck=dict(
        in_channels=[64, 128, 256],
        out_channels=fpn_channels,
        start_level=1,
        add_extra_convs='on_input',
        num_outs=4),
    bbox_head=dict(
        num_classes=3,
        in_channels=fpn_channels,
        feat_channels=fpn_channels,
        stacked_convs=2,
        # Anchors from 16 pixels up: octave base scale 2 at stride 8.
        anchor_generator=dict(
            octave_base_scale=2, strides=[8, 16, 32, 64]),
        # GIoU on decoded boxes localizes better than L1 on deltas in a
        # short schedule.
        reg_decoded_bbox=True,
        loss_bbox=dict(_delete_=True, type='GIoULoss', loss_weight=2.0)),
    test_cfg=dict(max_per_img=20))
