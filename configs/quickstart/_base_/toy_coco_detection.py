# The synthetic toy COCO data of mmattn (circles, rectangles and triangles):
# generate it with `python tools/misc/make_toy_coco.py --out data/toy_coco`.
# Small images, single-process loading (CPU friendly), bbox metric.
_base_ = 'mmdet::_base_/datasets/coco_detection.py'

dataset_type = 'CocoDataset'
data_root = 'data/toy_coco/'
metainfo = dict(
    classes=('circle', 'rectangle', 'triangle'),
    palette=[(220, 20, 60), (0, 128, 255), (0, 200, 80)])
image_scale = (128, 128)
backend_args = None

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=image_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=image_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
# num_workers=0 loads in the main process; persistent_workers must then be
# False (torch refuses persistent workers without workers).
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=4),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='val/'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader

val_evaluator = dict(
    type='CocoMetric',
    ann_file=data_root + 'annotations/instances_val.json',
    metric='bbox',
    format_only=False)
test_evaluator = val_evaluator
