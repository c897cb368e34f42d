# Semantic FPN with a narrow SE-ResNet-50 (three stages of 64, 128 and 256 channels, 16 base channels,
# strides 4-16, as the detection quick start's backbone), trained from scratch on the synthetic toy
# segmentation data in a few CPU minutes. The FPN head predicts at stride 4, which the 15-51 pixel
# shapes need to be told apart.
_base_ = [
    'mmseg::_base_/models/fpn_r50.py',
    './_base_/toy_seg.py',
    './_base_/toy_seg_runtime.py',
]
custom_imports = dict(imports=['mmattn.models'], allow_failed_imports=False)

num_classes = 4
# Plain BN: one CPU process (mmseg's SyncBN is for multi-GPU runs).
norm_cfg = dict(type='BN', requires_grad=True)
crop_size = (128, 128)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='SEResNet',
        depth=50,
        base_channels=16,
        num_stages=3,
        strides=(1, 2, 2),
        dilations=(1, 1, 1),
        out_indices=(0, 1, 2),
        norm_cfg=norm_cfg,
        norm_eval=False,
        init_cfg=None),
    neck=dict(in_channels=[64, 128, 256], out_channels=64, num_outs=3),
    decode_head=dict(
        in_channels=[64, 64, 64],
        in_index=[0, 1, 2],
        feature_strides=[4, 8, 16],
        channels=64,
        num_classes=num_classes,
        norm_cfg=norm_cfg,
        # The shapes cover about 10% of the pixels: without weights the short schedule learns the
        # background first and tells the shapes apart late.
        loss_decode=dict(class_weight=[1.0, 3.0, 3.0, 3.0])))
