"""Load a policy bundle: journey files and data documents -> the typed model.

`load_sources` is pure (it takes file names and bytes); `load` reads a
directory. Both collect every problem they find and raise them together, sorted
by location, so that one run of `juncture check` shows them all. Each journey file is
decoded by `juncture.policy.decode`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from juncture.errors import BundleError, Location, PolicyError
from juncture.policy import model as m
from juncture.policy.decode import _NAME, _Decoder
from juncture.policy.decode import suggest as suggest  # where policy/cel.py finds it
from juncture.policy.decode_invariants import bundle_invariants
from juncture.policy.source import plain, read_json, read_yaml

MAX_FILES = 2000
#: The stem of the bundle's own invariants file (`invariants.yaml`): not a journey.
BUNDLE_INVARIANTS = "invariants"
MAX_BUNDLE_BYTES = 64 << 20


def _canonical(value: Any) -> bytes:
    return msgspec.json.encode(value, order="sorted")


def _fingerprints(raw: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, str]:
    """Per checkpoint, a digest of what its decisions depend on (see `m.Journey`): the journey
    without its description, invariants, routes and other checkpoints, and the data. Locations and
    formatting do not count (the parsed values do)."""
    unused = ("checkpoints", "description", "invariants", "routes")
    common = {k: v for k, v in raw.items() if k not in unused}
    checkpoints = raw.get("checkpoints")
    return {
        name: hashlib.sha256(
            _canonical({"journey": common, "checkpoint": steps, "data": data})
        ).hexdigest()
        for name, steps in (checkpoints.items() if isinstance(checkpoints, dict) else ())
    }


def load_sources(files: Mapping[str, bytes]) -> m.Bundle:
    """Load a bundle from file names (relative to the bundle root) and their bytes.

    Journey files are ``*.yaml``/``*.yml`` at the top level (``*_test.yaml`` are policy
    tests and are skipped); data documents are ``data/*.yaml|yml|json``.

    Raises:
        BundleError: with every problem found, sorted by location.
    """
    errors: list[PolicyError] = []
    journeys: list[m.Journey] = []
    raw_journeys: dict[str, Any] = {}
    data: dict[str, Any] = {}
    shared: list[tuple[tuple[str, ...] | None, m.Invariant]] = []
    raw_invariants: dict[str, Any] = {}
    if len(files) > MAX_FILES:
        raise BundleError(
            [
                PolicyError(
                    f"bundle holds {len(files)} files, more than the limit of {MAX_FILES}",
                    code="policy.bundle.too_many_files",
                )
            ]
        )
    if sum(len(content) for content in files.values()) > MAX_BUNDLE_BYTES:
        raise BundleError(
            [
                PolicyError(
                    f"bundle is larger than the limit of {MAX_BUNDLE_BYTES} bytes",
                    code="policy.file.too_large",
                )
            ]
        )
    for file in sorted(files):
        content = files[file]
        path = Path(file)
        suffix = path.suffix.lower()
        try:
            if (
                len(path.parts) == 2
                and path.parts[0] == "data"
                and suffix in (".yaml", ".yml", ".json")
            ):
                value = (
                    read_json(content, file)
                    if suffix == ".json"
                    else plain(read_yaml(content, file))
                )
                if not _NAME.match(path.stem):
                    errors.append(
                        PolicyError(
                            f"data document name `{path.stem}` is not a valid identifier",
                            code="policy.schema.name",
                            location=Location(file=file),
                        )
                    )
                data[path.stem] = value
                continue
            if len(path.parts) != 1 or suffix not in (".yaml", ".yml") or is_test_file(file):
                continue
            node = read_yaml(content, file)
        except PolicyError as exc:
            errors.append(exc)
            continue
        decoder = _Decoder(file)
        if path.stem == BUNDLE_INVARIANTS:  # the bundle's invariants, not a journey
            shared += bundle_invariants(decoder, node)
            errors.extend(decoder.errors)
            raw_invariants[file] = plain(node)
            continue
        journey = decoder.journey(node)
        errors.extend(decoder.errors)
        if journey is None:
            continue
        if journey.name in raw_journeys:
            errors.append(
                PolicyError(
                    f"journey `{journey.name}` is declared in more than one file",
                    code="policy.bundle.duplicate_journey",
                    location=journey.location,
                )
            )
            continue
        raw_journeys[journey.name] = plain(node)
        journeys.append(journey)
    if not journeys and not errors:
        errors.append(PolicyError("the bundle holds no journey file", code="policy.bundle.empty"))
    journeys = _share(journeys, shared, errors)
    if errors:
        raise BundleError(errors)
    whole: dict[str, Any] = {"journeys": raw_journeys, "data": data}
    if raw_invariants:  # (a bundle without the file keeps the id it always had)
        whole["invariants"] = raw_invariants
    digest = hashlib.sha256(_canonical(whole)).hexdigest()
    journeys = [
        msgspec.structs.replace(j, fingerprints=_fingerprints(raw_journeys[j.name], data))
        for j in journeys
    ]
    journeys.sort(key=lambda journey: journey.name)
    return m.Bundle(journeys=tuple(journeys), data=data, version=f"sha256:{digest}")


def _share(
    journeys: list[m.Journey],
    shared: list[tuple[tuple[str, ...] | None, m.Invariant]],
    errors: list[PolicyError],
) -> list[m.Journey]:
    """Each journey with the bundle's invariants that cover it (all, or those naming it)."""
    names = {journey.name for journey in journeys}
    for targets, invariant in shared:
        for target in targets or ():
            if target not in names:
                errors.append(
                    PolicyError(
                        f"invariant `{invariant.name}` names journey `{target}`, "
                        "which the bundle does not hold",
                        code="policy.ref.unknown_journey",
                        location=invariant.location,
                        suggestion=suggest(target, sorted(names)),
                    )
                )
    out = []
    for journey in journeys:
        own = {invariant.name for invariant in journey.invariants}
        added = tuple(inv for targets, inv in shared if targets is None or journey.name in targets)
        for invariant in added:
            if invariant.name in own:
                errors.append(
                    PolicyError(
                        f"invariant `{invariant.name}` is declared by the bundle and by "
                        f"journey `{journey.name}`",
                        code="policy.schema.value",
                        location=invariant.location,
                        suggestion="give one of them another name",
                    )
                )
        out.append(msgspec.structs.replace(journey, invariants=journey.invariants + added))
    return out


def is_test_file(name: str) -> bool:
    stem = Path(name).name
    return stem.endswith(("_test.yaml", "_test.yml"))


def read_bundle_files(root: str | Path) -> dict[str, bytes]:
    """Read the files of a bundle directory (journeys, tests and data documents)."""
    base = Path(root)
    if not base.is_dir():
        raise BundleError(
            [
                PolicyError(
                    f"`{root}` is not a directory",
                    code="policy.file.unreadable",
                    location=Location(file=str(root)),
                )
            ]
        )
    files: dict[str, bytes] = {}
    candidates = [p for p in base.iterdir() if p.is_file()]
    data_dir = base / "data"
    if data_dir.is_dir():
        candidates += [p for p in data_dir.iterdir() if p.is_file()]
    for path in sorted(candidates):
        if path.suffix.lower() not in (".yaml", ".yml", ".json"):
            continue
        if len(files) >= MAX_FILES:
            raise BundleError(
                [
                    PolicyError(
                        f"bundle holds more than {MAX_FILES} files",
                        code="policy.bundle.too_many_files",
                    )
                ]
            )
        try:
            with path.open("rb") as handle:
                files[path.relative_to(base).as_posix()] = handle.read(MAX_BUNDLE_BYTES + 1)
        except OSError as exc:
            raise BundleError(
                [
                    PolicyError(
                        f"cannot read: {exc.strerror}",
                        code="policy.file.unreadable",
                        location=Location(file=str(path)),
                    )
                ]
            ) from None
    return files


def load(root: str | Path) -> m.Bundle:
    """Load the bundle in directory ``root``.

    Raises:
        BundleError: with every problem found, sorted by location.
    """
    return load_sources(read_bundle_files(root))
