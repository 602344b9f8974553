"""The declared minimums and the ones CI installs are the same versions.

pyproject.toml declares the oldest releases cache_sessions works with;
``.ci/minimums.txt`` pins exactly those for CI's minimums leg (``make test
CONSTRAINTS=.ci/minimums.txt``), which runs the whole suite on them. This
test fails when the two disagree, so that a minimum is never declared without
being tested, nor tested without being declared.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
CONSTRAINTS = ROOT / ".ci" / "minimums.txt"
# Extras the minimums leg installs besides the tools (`make test` installs [test,embedded,hiredis]).
RUNTIME_EXTRAS = ("hiredis",)


def pins() -> dict[str, Version]:
    """``{name: version}`` of the constraints file (every line ``name==version``)."""
    found: dict[str, Version] = {}
    for line in CONSTRAINTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            requirement = Requirement(line)
            (spec,) = requirement.specifier
            assert spec.operator == "==" and not requirement.extras, f"{line!r}: write name==version"
            found[canonicalize_name(requirement.name)] = Version(spec.version)
    return found


def project() -> dict[str, list[str]]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def minimum(requirement: Requirement) -> Version | None:
    """The ``>=`` bound of a requirement, or None."""
    bounds = [Version(spec.version) for spec in requirement.specifier if spec.operator == ">="]
    assert len(bounds) <= 1, f"{requirement}: one lower bound"
    return bounds[0] if bounds else None


def declared() -> list[Requirement]:
    """What a user of the package installs: its dependencies and the runtime extras."""
    extras = project()["optional-dependencies"]
    return [Requirement(text) for text in [*project()["dependencies"], *(r for e in RUNTIME_EXTRAS for r in extras[e])]]


def test_every_declared_minimum_is_pinned_in_the_constraints_file():
    pinned = pins()
    for requirement in declared():
        name = canonicalize_name(requirement.name)
        assert minimum(requirement) is not None, f"pyproject.toml: {requirement} declares no minimum"
        assert name in pinned, f"{CONSTRAINTS.name} does not pin {name} (pyproject.toml: {requirement})"
        disagree = f"{CONSTRAINTS.name}: {name}=={pinned[name]}; pyproject.toml: {requirement}"
        assert pinned[name] == minimum(requirement), disagree


def test_the_constraints_file_pins_nothing_else():
    """The test tools stay at their newest: only what pyproject.toml declares is pinned."""
    names = {canonicalize_name(requirement.name) for requirement in declared()}
    assert sorted(set(pins()) - names) == [], f"{CONSTRAINTS.name} pins what pyproject.toml does not declare"


def test_every_extra_asks_for_the_same_minimums():
    """``redis[hiredis]>=...`` in an extra names the same oldest redis-py as the dependencies."""
    pinned = pins()
    for extra, texts in project()["optional-dependencies"].items():
        for requirement in map(Requirement, texts):
            name = canonicalize_name(requirement.name)
            bound = minimum(requirement)
            if name in pinned and bound is not None:
                assert bound == pinned[name], f"[{extra}] {requirement}: the minimum is {pinned[name]}"
