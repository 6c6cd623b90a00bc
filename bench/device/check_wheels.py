"""Check a folder of wheels for the GPU machine against each other, before they travel.

For every wheel, each requirement (markers evaluated for CPython 3.12 on x86-64 Linux) must
be met by a wheel in the folder, at a matching version, or be a package the GPU machine's
image already has (`--image`, one name a line or the device notes' comma list). A mismatch
found here costs seconds; found on the GPU machine it costs a fresh start and the carry again.

    python3 bench/device/check_wheels.py ~/.cache/azr/device/wheels --image image-packages.txt
"""

from __future__ import annotations

import argparse
import re
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

TARGET = {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux",
          "platform_system": "Linux", "platform_machine": "x86_64", "implementation_name": "cpython",
          "platform_python_implementation": "CPython", "os_name": "posix", "extra": ""}


def metadata(wheel: Path):
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        return Parser().parsestr(archive.read(name).decode())


def problems(wheels: list[Path], image: set[str]) -> list[str]:
    versions: dict[str, Version] = {}
    requirements: dict[str, list[str]] = {}
    for wheel in wheels:
        meta = metadata(wheel)
        name = canonicalize_name(meta["Name"])
        versions[name] = Version(meta["Version"])
        requirements[name] = meta.get_all("Requires-Dist") or []
    found = []
    for name, lines in sorted(requirements.items()):
        for line in lines:
            req = Requirement(line)
            if req.marker is not None and not req.marker.evaluate(TARGET):
                continue
            dep = canonicalize_name(req.name)
            if dep in versions:
                if req.specifier and not req.specifier.contains(versions[dep], prereleases=True):
                    found.append(f"{name} needs {req.name}{req.specifier}, the folder has {versions[dep]}")
            elif dep not in image:
                found.append(f"{name} needs {req}, which neither the folder nor the image has")
    return found


def image_names(path: Path | None) -> set[str]:
    if path is None:
        return set()
    return {canonicalize_name(n) for n in re.split(r"[\s,]+", path.read_text()) if n.strip(". ")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--image", type=Path, help="the packages the GPU machine's image has")
    parser.add_argument("--ignore", action="append", default=[], help="a package whose needs go unchecked")
    args = parser.parse_args(argv)
    ignored = {canonicalize_name(n) for n in args.ignore}
    wheels = [w for w in sorted(args.folder.glob("*.whl"))]
    found = [p for p in problems(wheels, image_names(args.image)) if canonicalize_name(p.split()[0]) not in ignored]
    for line in found:
        print(line)
    print(f"{len(wheels)} wheels, {len(found)} problems")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
