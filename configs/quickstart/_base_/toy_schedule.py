# A short schedule for training from scratch on the toy data: AdamW with a
# linear warm-up, then one step decay. AdamW converges much faster than the
# SGD of the COCO schedules when no pretrained backbone is used.
_base_ = 'mmdet::_base_/schedules/schedule_1x.py'

max_epochs = 6
train_cfg = dict(
    type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [
    dict(
        type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(
        type='MultiStepLR',
        begin=0,
        end=max_epochs,
        by_epoch=True,
        milestones=[5],
        gamma=0.1)
]
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=0.002, weight_decay=0.05),
    clip_grad=dict(max_norm=10, norm_type=2))
# The schedule is tuned for 1 process x 4 images.
auto_scale_lr = dict(enable=False, base_batch_size=4)
