"""Argument checks shared by the attention layers.

Every check raises ``ValueError`` naming the argument, the value it got and what would be valid, so a
wrong config fails at build time with a message that says how to fix it.
"""
from typing import Sequence


def check_positive_int(name: str, value, owner: str) -> int:
    """Return ``value`` if it is an int >= 1, else raise a ValueError naming ``owner.name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f'{owner}: {name} must be a positive int, got {value!r}')
    return value


def check_divisible(name: str, value: int, divisor: int, owner: str, why: str = '') -> None:
    """Raise a ValueError if ``value`` is not a multiple of ``divisor``."""
    if value % divisor != 0:
        valid = [m for m in (divisor * (value // divisor), divisor * (value // divisor + 1)) if m > 0]
        hint = f' ({why})' if why else ''
        raise ValueError(f'{owner}: {name}={value} must be divisible by {divisor}{hint}; '
                         f'nearest valid values: {valid}')


def valid_groups(channels: int, parts: int = 1) -> list:
    """Every ``groups`` for which ``channels`` splits into ``groups`` groups of ``parts`` equal parts."""
    return [g for g in range(1, channels // parts + 1) if channels % (parts * g) == 0]


def check_groups(in_channels: int, groups: int, owner: str, parts: int = 1, why: str = '') -> None:
    """Raise a ValueError unless ``in_channels`` is divisible by ``parts * groups``, listing the valid
    ``groups`` for ``in_channels`` (the argument to change) rather than other channel counts.

    Args:
        parts (int): equal parts each group is split into (Shuffle Attention: 2, SGE: 1).
        why (str): what the split is for, said in the message.
    """
    check_positive_int('groups', groups, owner)
    if in_channels % (parts * groups) == 0:
        return
    valid = valid_groups(in_channels, parts)
    nearest = min(valid, key=lambda g: (abs(g - groups), -g))
    need = f'{parts} * groups' if parts > 1 else 'groups'
    hint = f' ({why})' if why else ''
    raise ValueError(f'{owner}: groups={groups} does not fit in_channels={in_channels}: in_channels must be '
                     f'divisible by {need}{hint}. Valid groups for in_channels={in_channels}: '
                     f'{", ".join(map(str, valid))} (nearest: groups={nearest}); in a backbone, groups must '
                     'fit the channels of every stage that has the layer.')


def reduced_channels(channels: int, reduction: int, owner: str) -> int:
    """Hidden width ``channels // reduction`` (floor, as in the official SE/CBAM/PSA code), >= 1."""
    check_positive_int('reduction', reduction, owner)
    hidden = channels // reduction
    if hidden < 1:
        raise ValueError(f'{owner}: in_channels={channels} // reduction={reduction} = 0 hidden units; '
                         f'use reduction <= {channels}')
    return hidden


def check_same_length(owner: str, **sequences: Sequence) -> int:
    """Raise unless all given sequences have the same length; return that length."""
    lengths = {name: len(seq) for name, seq in sequences.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f'{owner}: ' + ' and '.join(f'{n} (length {l})' for n, l in lengths.items())
                         + ' must have the same length')
    return next(iter(lengths.values()))
