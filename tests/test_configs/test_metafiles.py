"""The metafiles (OpenMMLab schema) agree with the configs they describe, and the tools can read them."""
import glob
import os.path as osp
import re

import pytest

from mmattn.analysis import metafile

ROOT = metafile.REPO_ROOT
MODELS = list(metafile.iter_models())


def test_model_index_imports_every_metafile():
    on_disk = sorted(glob.glob(osp.join(ROOT, 'configs', '**', 'metafile.yml'), recursive=True))
    assert sorted(metafile.metafile_paths()) == on_disk
    names = [m['Name'] for m in MODELS]
    assert len(names) == len(set(names))


@pytest.mark.parametrize('path', metafile.metafile_paths(), ids=lambda p: osp.basename(osp.dirname(p)))
def test_every_detection_config_is_listed_once(path):
    listed = [m['Config'] for m in metafile.read_yaml(path)['Models'] if 'Config' in m]
    folder = osp.dirname(path)
    configs = sorted(osp.relpath(p, ROOT) for p in glob.glob(osp.join(folder, '*.py'))
                     if p.endswith(('_coco.py', '_toy-coco.py')))
    assert sorted(c for c in listed if c.endswith(('_coco.py', '_toy-coco.py'))) == configs
    collections = {c['Name'] for c in metafile.read_yaml(path)['Collections']}
    assert {m['In Collection'] for m in metafile.read_yaml(path)['Models']} <= collections


def test_metadata_matches_the_config_name():
    """(test_coco_configs.py checks each config's backbone type and depth against its folder and name.)"""
    for path in metafile.metafile_paths():
        models = metafile.read_yaml(path)['Models']
        if 'toy' in str(models[0].get('Config', '')):
            continue  # the quick-start configs mix backbones
        if 'Segmentor' in models[0]['Metadata']:
            continue  # tests/test_seg/test_seg_configs.py checks the segmentation metafiles
        assert len({m['Metadata']['Backbone'] for m in models}) == 1, path
        for m in models:
            if 'Config' in m:
                assert osp.basename(m['Config']) == m['Name'] + '.py'
                assert re.search(r'[rs](\d+)_fpn', m['Name']).group(1) == str(m['Metadata']['Depth'])


def test_published_entries_are_complete():
    for model in MODELS:
        for entry in metafile.published(model):
            assert {'Source', 'Task', 'Dataset', 'Metrics'} <= set(entry), model['Name']
            if 'GFLOPs' in entry:
                assert {'Parameters (M)', 'Units', 'Input'} <= set(entry), model['Name']


def test_lookup_used_by_the_tools():
    eca = metafile.find_model('ECAResNet', 50, 'Faster R-CNN')
    assert eca['Name'] == 'faster-rcnn_eca-r50_fpn_1x_coco'
    assert metafile.published(eca, 'ECA-Net Table 5')[0]['Metrics']['box AP'] == 38.0
    imagenet = metafile.find_model('SGEResNet', 101, task='Image Classification')
    assert imagenet['Published'][0]['GFLOPs'] == 7.858
    assert metafile.seed_spread('faster-rcnn_eca-r50_fpn_1x_coco') is None
