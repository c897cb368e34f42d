#!/usr/bin/env python
"""Prepare a trained checkpoint for release, as mmdet's ``tools/model_converters/publish_model.py``.

Keeps only ``--save-keys`` (default ``meta state_dict``: the optimizer, message hub, param schedulers
... are dropped), removes ``meta`` entries that describe the training machine's state rather than the
model (``hook_msgs``), saves it in the legacy (non-zip) format mmdet uses, and renames it to
``<name>-<sha256[:8]>.pth`` (``<name>_<YYYYMMDD>-<sha256[:8]>.pth`` with ``--date``) so the file name
carries its hash.

Usage::

    python tools/model_converters/publish_model.py work_dirs/faster-rcnn_eca-r50_fpn_1x_coco/epoch_12.pth \
        faster-rcnn_eca-r50_fpn_1x_coco.pth
    # -> faster-rcnn_eca-r50_fpn_1x_coco-1a2b3c4d.pth
"""
import argparse
import datetime
import hashlib
import os
import os.path as osp
import sys

import torch

from mmattn.converters.common import ConversionError, load_source

#: meta entries that are run state, not model description
VOLATILE_META = ('hook_msgs', )


def sha256sum(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def final_name(out_file: str, sha: str, date: str = '') -> str:
    base = out_file[:-4] if out_file.endswith('.pth') else out_file
    return f'{base}{"_" + date if date else ""}-{sha[:8]}.pth'


def publish(in_file: str, out_file: str, save_keys=('meta', 'state_dict'), date: bool = False,
            trust_source: bool = False) -> str:
    """Write the published checkpoint; returns its final path."""
    ckpt = load_source(in_file, trust_source)
    if not isinstance(ckpt, dict):
        raise ConversionError(f'{in_file} holds a {type(ckpt).__name__}, not a checkpoint dict')
    if 'state_dict' in save_keys and 'state_dict' not in ckpt:
        raise ConversionError(f'{in_file} has no state_dict (top-level keys: {sorted(ckpt)})')
    missing = [k for k in save_keys if k not in ckpt]
    if missing:
        print(f'WARNING: keys {missing} are not in {in_file} and are skipped', file=sys.stderr)
    out = {k: ckpt[k] for k in save_keys if k in ckpt}
    if isinstance(out.get('meta'), dict):
        out['meta'] = {k: v for k, v in out['meta'].items() if k not in VOLATILE_META}
    torch.save(out, out_file, _use_new_zipfile_serialization=False)
    stamp = datetime.datetime.now().strftime('%Y%m%d') if date else ''
    final = final_name(out_file, sha256sum(out_file), stamp)
    os.replace(out_file, final)
    return final


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('in_file', help='input checkpoint filename')
    parser.add_argument('out_file', help='output checkpoint filename (the hash is appended)')
    parser.add_argument('--save-keys', nargs='+', default=['meta', 'state_dict'],
                        help='top-level keys to keep (default: meta state_dict)')
    parser.add_argument('--date', action='store_true', help='add _YYYYMMDD before the hash, as mmdet 3.x')
    parser.add_argument('--trust-source', action='store_true',
                        help='allow torch.load(weights_only=False) for pickles that need it')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if not osp.isdir(osp.dirname(osp.abspath(args.out_file))):
        print(f'ERROR: output folder of {args.out_file} does not exist', file=sys.stderr)
        return 1
    try:
        final = publish(args.in_file, args.out_file, tuple(args.save_keys), args.date, args.trust_source)
    except ConversionError as err:
        print(f'ERROR: {err}', file=sys.stderr)
        return 1
    print(final)
    return 0


if __name__ == '__main__':
    sys.exit(main())
