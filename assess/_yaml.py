"""YAML parsing for definition files: libyaml's safe loader when PyYAML was built with it.

The C loader reads the same documents as the pure-Python ``yaml.SafeLoader`` in about a tenth of
the time; with the pure-Python one, loading an instrument took a third of a second, which every
command paid before its first row.
"""
from __future__ import annotations

import yaml

LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load(text: str):
    return yaml.load(text, Loader=LOADER)


def compose(text: str):
    return yaml.compose(text, Loader=LOADER)
