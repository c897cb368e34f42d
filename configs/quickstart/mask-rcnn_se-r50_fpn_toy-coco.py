# Mask R-CNN with a narrow SE-ResNet-50 (three stages, 16 base channels),
# trained from scratch on the synthetic toy COCO data in a few CPU minutes.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    './_base_/toy_coco_instance.py',
    './_base_/toy_schedule.py',
    './_base_/toy_runtime.py',
]
custom_imports = dict(imports=['mmattn.models'], allow_failed_imports=False)

num_classes = 3
fpn_channels = 64
# P2-P5 (strides 4-32) from three backbone stages plus one max-pooled level.
strides = [4, 8, 16, 32]

model = dict(
    backbone=dict(
        type='SEResNet',
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
    neck=dict(
        in_channels=[64, 128, 256], out_channels=fpn_channels, num_outs=4),
    rpn_head=dict(
        in_channels=fpn_channels,
        feat_channels=fpn_channels,
        # Anchors of 16-128 pixels for shapes of 15-51 pixels.
        anchor_generator=dict(scales=[4], strides=strides)),
    roi_head=dict(
        bbox_roi_extractor=dict(
            out_channels=fpn_channels, featmap_strides=strides),
        bbox_head=dict(
            in_channels=fpn_channels,
            fc_out_channels=256,
            num_classes=num_classes,
            # GIoU on decoded boxes localizes much better than smooth L1 on
            # deltas in a short schedule (AP@0.75 and above).
            reg_decoded_bbox=True,
            loss_bbox=dict(_delete_=True, type='GIoULoss', loss_weight=10.0)),
        mask_roi_extractor=dict(
            out_channels=fpn_channels, featmap_strides=strides),
        # Two narrow convs instead of four 256-channel ones: the mask head
        # runs on every positive RoI and dominates the CPU time otherwise.
        mask_head=dict(
            num_convs=2,
            in_channels=fpn_channels,
            conv_out_channels=32,
            num_classes=num_classes)),
    # At most four shapes per image: fewer sampled anchors, proposals and
    # RoIs than for COCO keep the RoI heads cheap on CPU.
    train_cfg=dict(
        rpn=dict(sampler=dict(num=128)),
        rpn_proposal=dict(nms_pre=300, max_per_img=100),
        rcnn=dict(sampler=dict(num=64, pos_fraction=0.5))),
    test_cfg=dict(
        rpn=dict(nms_pre=300, max_per_img=100),
        rcnn=dict(max_per_img=20)))
