"""Checkpoint converters: official / mmpretrain / timm ImageNet weights -> mmattn backbones.

``common`` holds the shared steps (safe loading, finding the state dict, strict verification against
the built backbone, saving); ``official``, ``mmpretrain`` and ``timm`` each map one source layout.
The command-line entry points are ``tools/model_converters/*2mmattn.py``.
"""
