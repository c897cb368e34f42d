"""Model metadata in OpenMMLab's schema: ``model-index.yml`` imports ``configs/<family>/metafile.yml``.

Each metafile has ``Collections`` (one per paper: ``Paper``, ``Code``) and ``Models`` (one per config:
``Name``, ``In Collection``, ``Config``, ``Metadata``, ``Results``), as mmdet and mmpretrain. mmattn
adds one key per model, ``Published``: the papers' numbers (``Source``, ``Task``, ``Dataset``,
``Metrics`` and, where printed, ``Parameters (M)`` / ``GFLOPs`` with their ``Units`` and ``Input``).
``Results`` holds our measured results only (written by ``collect_results.py``). Models without a
``Config`` are ImageNet backbones that exist only for their published numbers.
"""
import os.path as osp
from typing import Dict, Iterator, List, Optional

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
MODEL_INDEX = osp.join(REPO_ROOT, 'model-index.yml')


def _yaml():
    import yaml
    return yaml


def read_yaml(path: str) -> dict:
    with open(path, encoding='utf-8') as f:
        return _yaml().safe_load(f) or {}


def write_metafile(data: dict, path: str) -> None:
    """Write ``data`` in the one layout every metafile uses (block style, keys in their order, no
    YAML anchors for values that happen to be shared)."""
    yaml = _yaml()

    class Dumper(yaml.SafeDumper):

        def ignore_aliases(self, data):
            return True

    text = yaml.dump(data, Dumper=Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True,
                     width=110)
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text)


def metafile_paths(index: str = MODEL_INDEX) -> List[str]:
    """The metafiles ``index`` imports (paths relative to the index's folder, made absolute)."""
    root = osp.dirname(osp.abspath(index))
    return [osp.join(root, p) for p in read_yaml(index).get('Import', [])]


def iter_models(index: str = MODEL_INDEX) -> Iterator[dict]:
    """Every model of every imported metafile; ``_metafile`` says where it came from."""
    for path in metafile_paths(index):
        for model in read_yaml(path).get('Models', []) or []:
            yield dict(model, _metafile=path)


def models_by_name(index: str = MODEL_INDEX) -> Dict[str, dict]:
    return {m['Name']: m for m in iter_models(index)}


def published(model: dict, source: Optional[str] = None) -> List[dict]:
    """The ``Published`` entries of ``model`` (those whose ``Source`` starts with ``source``)."""
    entries = model.get('Published', []) or []
    return [e for e in entries if source is None or str(e.get('Source', '')).startswith(source)]


def find_model(backbone: str, depth: int, detector: Optional[str] = None, task: Optional[str] = None,
               index: str = MODEL_INDEX) -> Optional[dict]:
    """The model of ``backbone``-``depth`` (with ``detector``, e.g. 'Mask R-CNN', or the ImageNet entry
    for ``task='Image Classification'``)."""
    for model in iter_models(index):
        meta = model.get('Metadata', {}) or {}
        if meta.get('Backbone') != backbone or meta.get('Depth') != depth:
            continue
        if detector is not None and meta.get('Detector') != detector:
            continue
        if task is not None and not any(e.get('Task') == task for e in published(model)):
            continue
        return model
    return None


def set_results(name: str, results: List[dict], index: str = MODEL_INDEX) -> str:
    """Replace the ``Results`` of model ``name`` in its metafile; returns the metafile's path."""
    for path in metafile_paths(index):
        data = read_yaml(path)
        for model in data.get('Models', []) or []:
            if model.get('Name') == name:
                model['Results'] = results
                write_metafile(data, path)
                return path
    raise KeyError(f'no model named {name!r} in the metafiles of {index}')


def seed_spread(name: str, index: str = MODEL_INDEX) -> Optional[dict]:
    """The ``Seed Spread`` of model ``name`` (quick-start configs: the same training run with several
    seeds, once: ``Seeds``, ``Command``, ``Date``, ``Commit`` and one AP list per metric), or None."""
    model = models_by_name(index).get(name)
    return None if model is None else model.get('Seed Spread')
