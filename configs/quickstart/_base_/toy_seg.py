# The synthetic toy segmentation data of mmattn: the toy COCO scenes (circles, rectangles and
# triangles) as label maps (0 = background), read by mmseg's own BaseSegDataset. Generate it with
# `python tools/misc/make_toy_seg.py --out data/toy_seg`. Single-process loading (CPU friendly).
dataset_type = 'BaseSegDataset'
data_root = 'data/toy_seg/'
metainfo = dict(
    classes=('background', 'circle', 'rectangle', 'triangle'),
    palette=[(0, 0, 0), (220, 20, 60), (0, 128, 255), (0, 200, 80)])
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
# num_workers=0 loads in the main process; persistent_workers must then be False.
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        img_suffix='.png',
        seg_map_suffix='.png',
        data_prefix=dict(img_path='img_dir/train', seg_map_path='ann_dir/train'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        img_suffix='.png',
        seg_map_suffix='.png',
        data_prefix=dict(img_path='img_dir/val', seg_map_path='ann_dir/val'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
