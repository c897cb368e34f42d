"""The backbone list and the labels the tools print, derived from the registry (one source)."""
from typing import Iterable, List, Optional, Sequence

#: the plain mmdet backbone every attention backbone is compared with
REFERENCE = 'ResNet'
#: detector types as the papers write them
DETECTOR_LABELS = {'FasterRCNN': 'Faster R-CNN', 'MaskRCNN': 'Mask R-CNN', 'RetinaNet': 'RetinaNet'}


def backbone_types(with_reference: bool = True) -> List[str]:
    """Registry names of mmattn's per-paper backbones, in registration order.

    The backbones :func:`mmattn.utils.config_check.mmattn_backbones` finds in mmdet's ``MODELS``,
    except the generic ``AttentionResNet`` (it needs an ``attention`` config): a new backbone class
    appears here once it is registered. ``with_reference`` puts mmdet's plain ``ResNet`` first.
    """
    import mmattn.models  # noqa: F401  (registers the backbones)
    from mmattn.utils.config_check import mmattn_backbones
    from mmdet.registry import MODELS
    ours = set(mmattn_backbones()) - {'AttentionResNet'}
    return ([REFERENCE] if with_reference else []) + [name for name in MODELS.module_dict if name in ours]


def backbone_label(btype: str, depth: Optional[int] = None, short: bool = False) -> str:
    """``'SEResNet', 50`` -> ``'SE-ResNet-50'`` (``short``: ``'SE'``); EPSANet is the paper's Small."""
    if btype.endswith('ResNet') and btype != 'ResNet':
        prefix = btype[:-len('ResNet')]
        name = prefix if short else f'{prefix}-ResNet'
    else:
        name = btype
    if depth is None:
        return name
    return f'{name}-{depth}' + (' small' if btype == 'EPSANet' else '')


def detector_label(dtype: str) -> str:
    return DETECTOR_LABELS.get(dtype, dtype)


def expand_backbone_specs(specs: Iterable[str], depths: Sequence[int] = (50, )) -> List[str]:
    """``['all']`` -> every backbone at every depth; ``'SEResNet'`` -> ``'SEResNet-50'`` (first depth);
    ``'SEResNet-101'`` stays. Duplicates are dropped, order kept."""
    out = []
    for spec in specs:
        if spec == 'all':
            out += [f'{b}-{d}' for d in depths for b in backbone_types()]
        elif '-' not in spec:
            out.append(f'{spec}-{depths[0]}')
        else:
            out.append(spec)
    return list(dict.fromkeys(out))


def sort_key(btype: Optional[str]) -> int:
    """Position of ``btype`` in :func:`backbone_types` (unknown types last)."""
    order = backbone_types()
    return order.index(btype) if btype in order else len(order)
