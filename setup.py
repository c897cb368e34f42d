"""Packaging for mmattn.

Install (after the OpenMMLab stack, see README "Installation details")::

    pip install --no-build-isolation -e .

``mmcv`` is deliberately NOT in ``install_requires``: if pip had to install it as
a dependency it would build mmcv 2.1.0 from its sdist inside an isolated build
environment that has no torch, which silently produces an mmcv WITHOUT
``mmcv.ops`` (no ``mmcv._ext``), and mmdet cannot work without those ops.
mmcv must be installed beforehand with::

    MMCV_WITH_OPS=1 pip install --no-build-isolation mmcv==2.1.0

``python3 tools/bootstrap.py`` does all of this.
"""
import os.path as osp
import re

from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))

# Requirements that must never be pulled in by pip as a dependency of mmattn.
NOT_INSTALL_REQUIRES = {'mmcv', 'mmcv-full', 'mmcv-lite'}


def get_version():
    """Read ``__version__`` from mmattn/version.py without importing mmattn
    (importing it would import torch, which may not be installed yet)."""
    namespace = {}
    with open(osp.join(HERE, 'mmattn', 'version.py'), encoding='utf-8') as f:
        exec(compile(f.read(), 'mmattn/version.py', 'exec'), namespace)
    return namespace['__version__']


def _req_name(req):
    """Project name of a requirement line such as ``mmcv==2.1.0``."""
    return re.split(r'[\s<>=!~;\[@]', req, maxsplit=1)[0].strip().lower()


def parse_requirements(fname, exclude=()):
    """Requirement strings in ``requirements/<fname>``.

    Comments, blank lines and pip options (``-r``, ``--find-links``...) are
    skipped; names in ``exclude`` are dropped.
    """
    reqs = []
    with open(osp.join(HERE, 'requirements', fname), encoding='utf-8') as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if not line or line.startswith('-'):
                continue
            if _req_name(line) in exclude:
                continue
            reqs.append(line)
    return reqs


def merge_requirements(*lists):
    """Concatenate requirement lists, keeping the first entry for each name."""
    seen, merged = set(), []
    for reqs in lists:
        for req in reqs:
            name = _req_name(req)
            if name not in seen:
                seen.add(name)
                merged.append(req)
    return merged


def readme():
    path = osp.join(HERE, 'README.md')
    if not osp.exists(path):
        return ''
    with open(path, encoding='utf-8') as f:
        return f.read()


if __name__ == '__main__':
    setup(
        name='mmattn',
        version=get_version(),
        description='CNN attention modules (SE, ECA, SA, PSA/EPSANet, CBAM, '
        'SGE) as MMDetection 3.x and MMSegmentation 1.x backbones',
        long_description=readme(),
        long_description_content_type='text/markdown',
        keywords='computer vision, object detection, semantic segmentation, attention, '
        'mmdetection, mmsegmentation',
        packages=find_packages(
            exclude=('configs', 'configs.*', 'tools', 'tools.*', 'tests',
                     'tests.*', 'work_dirs', 'work_dirs.*')),
        python_requires='>=3.8',
        # Runtime deps plus mmengine/mmdet; mmcv is excluded (see docstring).
        install_requires=merge_requirements(
            parse_requirements('runtime.txt', exclude=NOT_INSTALL_REQUIRES),
            parse_requirements(
                'mminstall.txt', exclude=NOT_INSTALL_REQUIRES)),
        extras_require={
            'tests': parse_requirements('tests.txt'),
            # MMSegmentation support: pip install --no-build-isolation -e .[seg]
            'seg': parse_requirements('seg.txt'),
        },
        classifiers=[
            'Programming Language :: Python :: 3',
            'Operating System :: POSIX :: Linux',
            'Topic :: Scientific/Engineering :: Artificial Intelligence',
        ],
        zip_safe=False,
    )
