"""Data residency: the regions a request may use are the intersection of every restriction it carries.

An entry is a region name or a prefix ("eu" admits "eu" and "eu-west-1"), as in `routing.router.region_allowed`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

REGIONS_METADATA = "allowed_regions"  # the older way: a key's metadata entry "eu" or "eu,us-east-1"


def covers(entry: str, region: str) -> bool:
    """True when `entry` admits `region` (itself, or `region` lies under the prefix `entry`)."""
    return region == entry or region.startswith(entry + "-")


def normalize(entries: Iterable[str]) -> tuple[str, ...]:
    """Distinct entries, sorted, without those another entry already covers ("eu-west-1" under "eu")."""
    distinct = {e.strip() for e in entries if e and e.strip()}
    return tuple(sorted(e for e in distinct if not any(o != e and covers(o, e) for o in distinct)))


def intersect(a: Sequence[str], b: Sequence[str]) -> tuple[str, ...]:
    """The entries admitting exactly the regions both `a` and `b` admit; () when none is left.

    Two entries that both admit a region are one under the other, so each overlapping pair leaves
    the narrower of the two: "eu" and "eu-west-1" leave "eu-west-1"; "eu" and "us" leave nothing.
    """
    out: list[str] = []
    for x in a:
        for y in b:
            if covers(y, x):
                out.append(x)
            elif covers(x, y):
                out.append(y)
    return normalize(out)


def effective_regions(restrictions: Iterable[Sequence[str] | None]) -> tuple[str, ...] | None:
    """The intersection over every restriction given; None or empty ones do not narrow it.

    Returns None when nothing restricts the request, and () when the restrictions admit no region at all.
    """
    result: tuple[str, ...] | None = None
    for restriction in restrictions:
        if not restriction:
            continue
        entries = normalize(restriction)
        if not entries:
            continue
        result = entries if result is None else intersect(result, entries)
    return result


def metadata_regions(metadata: dict[str, str] | None) -> tuple[str, ...] | None:
    declared = (metadata or {}).get(REGIONS_METADATA)
    if not declared:
        return None
    return normalize(declared.split(",")) or None
