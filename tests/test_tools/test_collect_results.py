"""collect_results.py on generated work_dirs laid out as mmengine writes them."""
import json
import os
import os.path as osp
import shutil

import pytest
from tools_helpers import load_tool

from mmattn.analysis.metafile import metafile_paths, models_by_name, read_yaml
from mmattn.analysis.results import results_table
from mmattn.analysis.work_dirs import collect

cli = load_tool('analysis_tools/collect_results.py')

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CFG = osp.join(ROOT, 'configs')

# config -> box AP (fraction, as CocoMetric logs it), mask AP or None
RUNS = {
    'resnet/faster-rcnn_r50_fpn_1x_coco.py': (0.374, None),
    'se_resnet/faster-rcnn_se-r50_fpn_1x_coco.py': (0.381, None),
    'eca_resnet/faster-rcnn_eca-r50_fpn_1x_coco.py': (0.385, None),
    'resnet/mask-rcnn_r50_fpn_1x_coco.py': (0.382, 0.347),
    'se_resnet/mask-rcnn_se-r50_fpn_1x_coco.py': (0.390, 0.351),
}


def metrics(box, mask, prefix='coco/'):
    rec = {f'{prefix}bbox_mAP': box, f'{prefix}bbox_mAP_50': box + 0.2, f'{prefix}bbox_mAP_75': box + 0.03,
           f'{prefix}bbox_mAP_s': box - 0.15, f'{prefix}bbox_mAP_m': box + 0.04, f'{prefix}bbox_mAP_l': box + 0.11}
    if mask is not None:
        rec.update({f'{prefix}segm_mAP': mask, f'{prefix}segm_mAP_50': mask + 0.2, f'{prefix}segm_mAP_75': mask + 0.02})
    return rec


def make_work_dir(root, config, box, mask, timestamp='20240101_120000', last_epoch=12, test=None, broken=False):
    """<root>/<name>/<name>.py (dumped config) + <timestamp>/vis_data/scalars.json (+ <timestamp>.json)."""
    from mmengine.config import Config
    name = osp.splitext(osp.basename(config))[0]
    work_dir = osp.join(root, name)
    vis = osp.join(work_dir, timestamp, 'vis_data')
    os.makedirs(vis, exist_ok=True)
    cfg_path = osp.join(work_dir, name + '.py')
    if not osp.exists(cfg_path):
        Config.fromfile(osp.join(CFG, config)).dump(cfg_path)
    lines = []
    for epoch in range(1, last_epoch + 1):
        lines.append({'lr': 0.02, 'loss': 1.0 / epoch, 'step': epoch * 100})
        # earlier epochs are worse; the last one has the final numbers
        scale = 1.0 if epoch == last_epoch else epoch / (last_epoch + 1)
        lines.append(dict(metrics(box * scale, None if mask is None else mask * scale), step=epoch))
    text = '\n'.join(json.dumps(rec) for rec in lines) + '\n'
    if broken:
        text += '{"coco/bbox_mAP": 0.9'  # a line cut off by a crash
    for fname in ('scalars.json', f'{timestamp}.json'):
        with open(osp.join(vis, fname), 'w') as f:
            f.write(text)
    if test is not None:
        with open(osp.join(work_dir, timestamp, f'{timestamp}.json'), 'w') as f:
            json.dump(dict(metrics(*test), **{'time': 0.1}), f)
    return work_dir


@pytest.fixture(scope='module')
def work_dirs(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('work_dirs'))
    for config, (box, mask) in RUNS.items():
        make_work_dir(root, config, box, mask, broken=config.startswith('se_resnet/faster'))
    # an older run of the same ECA config that must lose against the newer one
    make_work_dir(osp.join(root, 'old'), 'eca_resnet/faster-rcnn_eca-r50_fpn_1x_coco.py', 0.2, None,
                  timestamp='20230101_000000')
    # unfinished: evaluated at epoch 6 of 12
    make_work_dir(root, 'sa_resnet/faster-rcnn_sa-r50_fpn_1x_coco.py', 0.30, None, last_epoch=6)
    # a train run followed by tools/test.py in a later run folder: the test result wins
    wd = make_work_dir(root, 'cbam_resnet/mask-rcnn_cbam-r50_fpn_1x_coco.py', 0.10, 0.10)
    make_work_dir(root, 'cbam_resnet/mask-rcnn_cbam-r50_fpn_1x_coco.py', 0.10, 0.10, timestamp='20240102_000000',
                  last_epoch=0, test=(0.395, 0.356))
    assert osp.isdir(wd)
    return root


def by_name(results):
    return {r['name']: r for r in results}


def test_collect_reads_logs_and_configs(work_dirs):
    results = by_name(collect([work_dirs]))
    r50 = results['faster-rcnn_r50_fpn_1x_coco']
    assert (r50['detector'], r50['backbone'], r50['depth']) == ('FasterRCNN', 'ResNet', 50)
    assert r50['dataset'] == 'CocoDataset (data/coco)' and r50['max_epochs'] == 12 and r50['finished']
    assert r50['evaluated'] == 'val e12'
    assert r50['metrics']['AP'] == pytest.approx(37.4) and r50['metrics']['AP50'] == pytest.approx(57.4)
    assert 'mask AP' not in r50['metrics']
    assert results['mask-rcnn_r50_fpn_1x_coco']['metrics']['mask AP'] == pytest.approx(34.7)
    # the cut-off last line of the SE log is ignored
    assert results['faster-rcnn_se-r50_fpn_1x_coco']['metrics']['AP'] == pytest.approx(38.1)
    # newest work dir wins for duplicated configs
    assert results['faster-rcnn_eca-r50_fpn_1x_coco']['metrics']['AP'] == pytest.approx(38.5)
    # tools/test.py result preferred over validation
    cbam = results['mask-rcnn_cbam-r50_fpn_1x_coco']
    assert cbam['evaluated'] == 'test' and cbam['metrics']['AP'] == pytest.approx(39.5)
    sa = results['faster-rcnn_sa-r50_fpn_1x_coco']
    assert not sa['finished'] and sa['evaluated'] == 'val e6'
    # --select best: the best box AP over all evaluations
    best = by_name(collect([work_dirs], select='best'))['mask-rcnn_cbam-r50_fpn_1x_coco']
    assert best['metrics']['AP'] == pytest.approx(39.5)


def test_table_rows_and_deltas(work_dirs):
    results = collect([work_dirs])
    table = results_table(results)
    rows = [line for line in table.splitlines() if line.startswith('| ') and 'detector' not in line]
    names = [r.split(' | ')[2] for r in rows]
    # detector order Faster, Mask; backbone order ResNet, SE, ECA, SA, CBAM
    assert names == ['faster-rcnn_r50_fpn_1x_coco', 'faster-rcnn_se-r50_fpn_1x_coco',
                     'faster-rcnn_eca-r50_fpn_1x_coco', 'faster-rcnn_sa-r50_fpn_1x_coco',
                     'mask-rcnn_r50_fpn_1x_coco', 'mask-rcnn_se-r50_fpn_1x_coco', 'mask-rcnn_cbam-r50_fpn_1x_coco']
    cells = {r.split(' | ')[2]: [c.strip() for c in r.strip('|').split('|')] for r in rows}
    eca = cells['faster-rcnn_eca-r50_fpn_1x_coco']
    assert eca[6:12] == ['38.5', '58.5', '41.5', '23.5', '42.5', '49.5']
    assert eca[-2:] == ['+1.1', '+0.4']  # vs ResNet 37.4, vs SE 38.1
    cbam = cells['mask-rcnn_cbam-r50_fpn_1x_coco']
    assert cbam[12] == '35.6' and cbam[-2:] == ['+1.3 / +0.9', '+0.5 / +0.5']
    assert cells['faster-rcnn_r50_fpn_1x_coco'][-2:] == ['–', '-0.7']
    assert 'unfinished' in cells['faster-rcnn_sa-r50_fpn_1x_coco'][3]


def test_update_metafiles_changes_only_the_results(work_dirs, tmp_path):
    # a copy of the model index and the metafiles it imports
    for path in metafile_paths():
        rel = osp.relpath(path, ROOT)
        os.makedirs(tmp_path / osp.dirname(rel), exist_ok=True)
        shutil.copy(path, tmp_path / rel)
    index = tmp_path / 'model-index.yml'
    shutil.copy(osp.join(ROOT, 'model-index.yml'), index)
    before = models_by_name(str(index))
    assert cli.main([work_dirs, '--update-metafiles', str(index)]) == 0
    after = models_by_name(str(index))
    changed = sorted(n for n in after if after[n] != before[n])
    assert changed == sorted(['faster-rcnn_r50_fpn_1x_coco', 'faster-rcnn_se-r50_fpn_1x_coco',
                              'faster-rcnn_eca-r50_fpn_1x_coco', 'mask-rcnn_r50_fpn_1x_coco',
                              'mask-rcnn_se-r50_fpn_1x_coco', 'mask-rcnn_cbam-r50_fpn_1x_coco'])
    for name in changed:  # only Results changed; the published numbers stay
        assert {k: v for k, v in after[name].items() if k != 'Results'} == \
            {k: v for k, v in before[name].items() if k != 'Results'}
    assert after['faster-rcnn_eca-r50_fpn_1x_coco']['Results'] == [dict(
        Task='Object Detection', Dataset='COCO',
        Metrics={'box AP': 38.5, 'AP50': 58.5, 'AP75': 41.5, 'APs': 23.5, 'APm': 42.5, 'APl': 49.5})]
    cbam = after['mask-rcnn_cbam-r50_fpn_1x_coco']['Results']
    assert cbam[0]['Metrics']['box AP'] == 39.5 and cbam[1]['Task'] == 'Instance Segmentation'
    assert cbam[1]['Metrics']['mask AP'] == 35.6
    # idempotent; --allow-partial writes the unfinished run too
    texts = {p: read_yaml(p) for p in metafile_paths(str(index))}
    assert cli.main([work_dirs, '--update-metafiles', str(index)]) == 0
    assert {p: read_yaml(p) for p in metafile_paths(str(index))} == texts
    assert cli.main([work_dirs, '--update-metafiles', str(index), '--allow-partial']) == 0
    assert models_by_name(str(index))['faster-rcnn_sa-r50_fpn_1x_coco']['Results']


def test_cli_with_flops_json_and_figure(work_dirs, tmp_path, capsys):
    flops = tmp_path / 'complexity.json'
    recs = []
    for i, config in enumerate(list(RUNS) + ['cbam_resnet/mask-rcnn_cbam-r50_fpn_1x_coco.py']):
        name = osp.splitext(osp.basename(config))[0]
        recs.append(dict(name=name, shape=[1280, 800], params=int(41.75e6 + i * 1e6),
                         flops=dict(full=int(207.3e9 + i * 1e8), mmdet=1, mmcv1=2)))
    flops.write_text(json.dumps(dict(detectors=recs)))
    png, md = tmp_path / 'fig.png', tmp_path / 'res.md'
    assert cli.main([work_dirs, '--flops-json', str(flops), '--figure', str(png), '--out', str(md)]) == 0
    out = capsys.readouterr().out
    assert '| Faster R-CNN | ResNet-50 | faster-rcnn_r50_fpn_1x_coco | val e12 | 41.75 | 207.30 | 37.4 |' in out
    assert md.read_text().strip() == out.strip()
    data = png.read_bytes()
    assert data[:8] == b'\x89PNG\r\n\x1a\n' and len(data) > 10_000


def test_no_results(tmp_path, capsys):
    assert cli.main([str(tmp_path)]) == 1
    assert 'no finished evaluation' in capsys.readouterr().err


def test_flops_computed_from_the_dumped_config_and_cached(tmp_path, capsys):
    root = str(tmp_path / 'wd')
    make_work_dir(root, 'eca_resnet/retinanet_eca-r50_fpn_1x_coco.py', 0.373, None)
    cache = tmp_path / 'cache.json'
    argv = [root, '--flops', 'compute', '--flops-shape', '64', '96', '--flops-cache', str(cache)]
    assert cli.main(argv) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if 'retinanet_eca' in line)
    cells = [c.strip() for c in row.strip('|').split('|')]
    assert cells[4] == '37.97'  # all parameters of RetinaNet ECA-R-50 (get_flops builds the dumped config)
    cached = json.loads(cache.read_text())['detectors']
    assert [r['name'] for r in cached] == ['retinanet_eca-r50_fpn_1x_coco'] and cached[0]['shape'] == [64, 96]
    # second call: read from the cache, nothing recomputed (a poisoned cache value shows through)
    cached[0]['params'] = 1_000_000
    cache.write_text(json.dumps(dict(detectors=cached)))
    assert cli.main(argv) == 0
    assert '| 1.00 |' in capsys.readouterr().out
