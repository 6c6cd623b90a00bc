"""`azr render -f RUN.yaml`: the objects the operator would apply, as one YAML stream."""

from __future__ import annotations

import argparse
import sys

import yaml

from azr.spec import SpecError, load_run


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the spec in the ConfigMap) as literal blocks, readable as written."""


def _str(dumper: yaml.SafeDumper, value: str):
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_Dumper.add_representer(str, _str)


def run_render(args: argparse.Namespace) -> int:
    from azr_operator.builders import build
    from azr_operator.crd import custom_resource_definition

    if args.crd:
        sys.stdout.write(yaml.dump(custom_resource_definition(), Dumper=_Dumper, sort_keys=False))
        return 0
    if not args.file:
        print("azr render: -f FILE is required (or --crd)", file=sys.stderr)
        return 2
    try:
        run = load_run(args.file)
    except SpecError as exc:
        print(exc, file=sys.stderr)
        return 2
    sys.stdout.write(yaml.dump_all(build(run), Dumper=_Dumper, sort_keys=False))
    return 0
