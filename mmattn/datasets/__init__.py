"""Dataset utilities of mmattn (no mmdet import needed)."""
from .toy_coco import CLASSES as TOY_COCO_CLASSES
from .toy_coco import generate_toy_coco

__all__ = ['generate_toy_coco', 'TOY_COCO_CLASSES']
