"""Dataset utilities of mmattn (no mmdet or mmseg import needed)."""
from .toy_coco import CLASSES as TOY_COCO_CLASSES
from .toy_coco import generate_toy_coco
from .toy_seg import CLASSES as TOY_SEG_CLASSES
from .toy_seg import generate_toy_seg

__all__ = ['generate_toy_coco', 'TOY_COCO_CLASSES', 'generate_toy_seg', 'TOY_SEG_CLASSES']
