#!/usr/bin/env python
"""Parameters and FLOPs of detector and segmentor configs and bare backbones (nothing is downloaded; no
data needed).

Counting is :mod:`mmattn.analysis.complexity`: mmengine's ``FlopAnalyzer`` (column ``mmdet``, what
mmdet's own ``get_flops.py`` prints) plus the operators it does not count, i.e. the attention gates
(column ``full``). A detector runs on one ``1 x 3 x H x W`` image; two-stage detectors get
``--proposals`` fixed boxes instead of the RPN's output. A segmentation config (MMSegmentation) counts
its inference network (backbone and decode head, as mmseg's ``get_flops.py``) at its training crop,
e.g. 512 x 1024 for Cityscapes, unless ``--shape`` is given. ``--paper-conventions`` also counts as the
papers did (mmcv 1.x) and compares with the published numbers in the metafiles, see
``docs/complexity.md``.

Examples::

    python tools/analysis_tools/get_flops.py configs/eca_resnet/faster-rcnn_eca-r50_fpn_1x_coco.py
    python tools/analysis_tools/get_flops.py --backbones all --with-head
    python tools/analysis_tools/get_flops.py configs/segmentation/resnet/pspnet_r50b-d8_4xb2-80k_cityscapes-512x1024.py
    python tools/analysis_tools/get_flops.py configs --backbones all --with-head --paper-conventions
"""
import argparse
import json
import sys

from mmattn.analysis import collect_configs, expand_backbone_specs


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], epilog=__doc__.split('Examples::')[-1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('configs', nargs='*', help='config files, folders (recursive) or globs')
    parser.add_argument('--backbones', nargs='+', default=[], metavar='TYPE-DEPTH',
                        help="e.g. ResNet-50 ECAResNet-101; 'all': every backbone at depths 50 and 101")
    parser.add_argument('--with-head', action='store_true', help='backbones with the ImageNet head')
    parser.add_argument('--shape', type=int, nargs=2, default=None, metavar=('H', 'W'),
                        help='model input (default: detectors 1280 800, as the papers; segmentors their '
                        'training crop, as mmseg)')
    parser.add_argument('--backbone-shape', type=int, nargs=2, default=(224, 224), metavar=('H', 'W'))
    parser.add_argument('--proposals', type=int, default=1000, help='RoIs fed to two-stage RoI heads')
    parser.add_argument('--allow-unsupported', action='store_true',
                        help='report operators without a counting rule instead of failing')
    parser.add_argument('--by-op', action='store_true', help='FLOPs per operator of every model')
    parser.add_argument('--paper-conventions', action='store_true',
                        help="count as the papers did (mmcv 1.x) and compare with their numbers")
    parser.add_argument('--json', help='also write the records here')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from mmattn.analysis.complexity import complexity_of_backbone, complexity_of_config
    specs = expand_backbone_specs(args.backbones, depths=(50, 101))
    configs = collect_configs(args.configs)
    if not specs and not configs:
        print('nothing to do: give config files/folders/globs and/or --backbones', file=sys.stderr)
        return 2
    records = [complexity_of_backbone(s, args.backbone_shape, args.with_head, args.allow_unsupported)
               for s in specs]
    records += [complexity_of_config(c, args.shape, args.proposals, args.cfg_options, args.allow_unsupported)
                for c in configs]
    lines = ['| model | input | params (M) | GFLOPs full | GFLOPs mmdet |', '|---|---|---|---|---|']
    for r in records:
        lines.append(f'| {r["name"]} | {r["shape"][0]}x{r["shape"][1]} | {r["params"] / 1e6:.2f} | '
                     f'{r["flops"]["full"] / 1e9:.3f}{" (uncounted ops!)" if r["uncounted"] else ""} | '
                     f'{r["flops"]["mmdet"] / 1e9:.3f} |')
        if args.by_op:
            lines += [f'|   {op} | | | {n / 1e9:.4f} | |' for op, n in sorted(r['by_op'].items(), key=lambda kv: -kv[1])]
    print('\n'.join(lines))
    if args.paper_conventions:
        from mmattn.analysis import paper_conventions as pc
        det = [pc.detector_record(c, args.shape or (1280, 800), args.proposals, args.cfg_options) for c in configs]
        bb = [pc.backbone_record(s, args.backbone_shape, args.with_head) for s in specs]
        for table in (pc.backbone_table(bb) if bb else '', pc.detector_table(det) if det else '',
                      pc.reconciliation_table(det)):
            if table:
                print('\n' + table)
        records += bb + det
    if args.json:
        with open(args.json, 'w', encoding='utf-8') as f:
            json.dump(records, f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
