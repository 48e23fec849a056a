"""Where images come from: the bundled ELPV package, a folder of class sub-folders, or a CSV.

Each source only lists items (path, label, group, ...); nothing is decoded here, so listing
50,000 images costs a directory walk, not 50,000 decodes.
"""

from __future__ import annotations

import csv
import importlib.resources
from dataclasses import dataclass, field
from pathlib import Path

from inspectcnn.config import DataConfig
from inspectcnn.data.images import is_image_file
from inspectcnn.errors import UserError

SPLITS = ("train", "val", "test")
ELPV_CLASSES = ("functional", "defective")


class DataSourceError(UserError, ValueError):
    """The data set itself is unusable (missing folder, empty class, bad CSV...)."""


@dataclass(frozen=True)
class Item:
    """One image to prepare. ``source`` is the path shown to users (relative to the data root)."""

    path: Path
    source: str
    label: int
    group: str = ""
    split: str | None = None  # set when the data set ships its own split
    extra: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Listing:
    items: list[Item]
    classes: tuple[str, str]
    root: Path


# Names of the good class: never label 1 ("positive", what defect probability, recall and F1 are about)
# unless params.yaml says so.
OK_NAMES = frozenset({"good", "ok", "okay", "normal", "pass", "passed", "functional", "nominal", "clean", "intact",
                      "accept", "accepted", "healthy", "fine", "negative", "nondefective", "notdefective",
                      "nodefect", "defectfree", "flawless", "conforming", "nonanomalous"})


def looks_ok(name: str) -> bool:
    """Whether a class name reads like the good (negative) class: good, OK, normal, pass, non-defective..."""
    return "".join(ch for ch in name.lower() if ch.isalnum()) in OK_NAMES


def _check_classes(found: list[str], configured: tuple[str, str] | None, where: str) -> tuple[str, str]:
    if configured is not None:
        unknown = sorted(set(found) - set(configured))
        if unknown:
            raise DataSourceError(
                f"{where}: labels {unknown} are not in data.classes {list(configured)}; "
                "fix the labels or list the two classes in params.yaml"
            )
        return configured
    names = sorted(set(found))
    if len(names) != 2:
        raise DataSourceError(
            f"{where}: a binary task needs exactly 2 classes, found {len(names)}: {names}. "
            "Set data.classes to the two class names (negative first)"
        )
    if looks_ok(names[1]) and not looks_ok(names[0]):
        raise DataSourceError(
            f"{where}: data.classes is not set, and the sorted class names {names} would make {names[1]!r} the "
            f"positive class (label 1: the class every probability, recall and F1 is about), but {names[1]!r} reads "
            f"like the good class. Say which is which in params.yaml, negative first: data.classes: "
            f"[{names[1]}, {names[0]}] ({names[0]!r} positive), or [{names[0]}, {names[1]}] to keep {names[1]!r} "
            "positive on purpose"
        )
    return names[0], names[1]


def _elpv(config: DataConfig) -> Listing:
    root = Path(str(importlib.resources.files("elpv_dataset") / "data"))
    labels = root / "labels.csv"
    if not labels.is_file():
        raise DataSourceError(f"the elpv-dataset package has no {labels}: reinstall it (pip install elpv-dataset)")
    items = []
    for line_no, line in enumerate(labels.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rel, probability, cell_type = line.split()
            probability = float(probability)
        except ValueError:
            raise DataSourceError(f"{labels}:{line_no}: cannot parse {line!r}") from None
        items.append(
            Item(
                path=root / rel,
                source=f"elpv_dataset/{rel}",
                label=int(probability >= config.threshold),
                group=cell_type,
                extra={"probability": probability},
            )
        )
    return Listing(items, config.classes or ELPV_CLASSES, root)


def _class_dirs(parent: Path) -> list[Path]:
    return sorted(p for p in parent.iterdir() if p.is_dir() and not p.name.startswith("."))


def _folder(config: DataConfig) -> Listing:
    root = Path(config.path).expanduser().resolve()
    if not root.is_dir():
        raise DataSourceError(f"data.path {config.path!r} is not a folder")
    subdirs = _class_dirs(root)
    presplit = bool(subdirs) and {d.name for d in subdirs} <= set(SPLITS)
    layout = [(d.name, d) for d in subdirs] if presplit else [(None, root)]
    if presplit and {d.name for d in subdirs} != set(SPLITS):
        raise DataSourceError(f"{root}: a pre-split folder needs all of {list(SPLITS)}, found {[d.name for d in subdirs]}")

    raw: list[tuple[Path, str, str | None]] = []
    names: set[str] = set()
    empty: list[str] = []
    for split, parent in layout:
        class_dirs = _class_dirs(parent)
        if not class_dirs:
            raise DataSourceError(f"{parent}: no class sub-folders (expected {parent}/<class>/<image files>)")
        for class_dir in class_dirs:
            files = sorted(p for p in class_dir.rglob("*") if is_image_file(p))
            if not files:
                empty.append(str(class_dir))
            names.add(class_dir.name)
            raw.extend((f, class_dir.name, split) for f in files)
    if empty:
        raise DataSourceError(f"empty class folder(s), no image files in: {', '.join(empty)}")
    classes = _check_classes(sorted(names), config.classes, str(root))
    index = {name: i for i, name in enumerate(classes)}
    items = [
        Item(path=path, source=path.relative_to(root).as_posix(), label=index[name], split=split)
        for path, name, split in raw
        if name in index
    ]
    return Listing(items, classes, root)


def _csv(config: DataConfig) -> Listing:
    table = Path(config.path).expanduser().resolve()
    if not table.is_file():
        raise DataSourceError(f"data.path {config.path!r} is not a file")
    root = table.parent
    with table.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = [c.strip() for c in reader.fieldnames or []]
        missing = [c for c in ("path", "label") if c not in columns]
        if missing:
            raise DataSourceError(f"{table}: missing column(s) {missing}; the header must be path,label[,group]")
        rows = [{k.strip(): (v or "").strip() for k, v in row.items() if k} for row in reader]
    if not rows:
        raise DataSourceError(f"{table}: no rows")

    problems, seen = [], {}
    for line_no, row in enumerate(rows, 2):
        path = (root / row["path"]).resolve()
        if not path.is_relative_to(root):
            problems.append(f"line {line_no}: {row['path']!r} lies outside the CSV's folder {root}")
        elif not row["label"]:
            problems.append(f"line {line_no}: empty label")
        elif path in seen:
            problems.append(f"line {line_no}: duplicate path {row['path']!r} (first on line {seen[path]})")
        elif not path.is_file():
            problems.append(f"line {line_no}: no such file {row['path']!r}")
        seen.setdefault(path, line_no)
    if problems:
        raise DataSourceError(f"{table}: {len(problems)} bad row(s):\n  " + "\n  ".join(problems))

    classes = _check_classes([row["label"] for row in rows], config.classes, str(table))
    index = {name: i for i, name in enumerate(classes)}
    items = [
        Item(
            path=(root / row["path"]).resolve(),
            source=Path(row["path"]).as_posix(),
            label=index[row["label"]],
            group=row.get("group", ""),
        )
        for row in rows
    ]
    return Listing(items, classes, root)


_SOURCES = {"elpv": _elpv, "folder": _folder, "csv": _csv}


def list_items(config: DataConfig) -> Listing:
    """All items of the configured source, sorted by source path; checks both classes are present."""
    listing = _SOURCES[config.source](config)
    if not listing.items:
        raise DataSourceError(f"data source {config.source!r} lists no images")
    present = {item.label for item in listing.items}
    for label, name in enumerate(listing.classes):
        if label not in present:
            raise DataSourceError(f"class {name!r} has no images in data source {config.source!r}")
    items = sorted(listing.items, key=lambda item: item.source)
    return Listing(items, listing.classes, listing.root)
