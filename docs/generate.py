"""Every figure of README.md, CONTRIBUTING.md and docs/*.md that comes from a run, written from the committed
result files (``reports/``, ``models/``, ``benchmarks/results/``), so that the text cannot drift from them.

In the Markdown, such a figure sits between markers that a renderer does not show:

- an inline fact: ``<!-- fact:champion.test_accuracy -->0.895 [0.865, 0.926]<!-- /fact -->``;
- a block (a table, a figure): ``<!-- generated:results -->`` ... ``<!-- /generated -->``.

``make docs`` (``python docs/generate.py``) rewrites every marker's text and docs/figures/; ``make docs-check``
(``--check``, and tests/test_docs.py) changes nothing and exits 1 naming each marker whose text differs from
the files, each unknown key, and each run figure typed outside a marker (a metric such as 0.91 or a time
such as 12 minutes: those belong in a fact).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = ("README.md", "CONTRIBUTING.md", "docs/*.md")
FIGURE = Path("docs/figures/accuracy_latency.png")
FACT = re.compile(r"<!-- fact:([\w.]+) -->(.*?)<!-- /fact -->", re.S)
BLOCK = re.compile(r"(<!-- generated:([\w.]+) -->\n)(.*?)(<!-- /generated -->)", re.S)
CODE = re.compile(r"^```.*?^```|`[^`\n]+`", re.S | re.M)
# run figures typed by hand: a metric with three or more decimals, or a time in ms / minutes / hours
STRAY = re.compile(r"(?<![\w.\-])0\.\d{3,}\b|\b\d+(?:\.\d+)?\s?(?:ms|min|minutes|hours?)\b")
LEVELS = ("0", "1/3", "2/3", "1")


def read_json(root: Path, path: str) -> dict:
    return json.loads((root / path).read_text())


def ranking(root: Path) -> list[dict]:
    with (root / "reports" / "ranking.csv").open() as handle:
        return list(csv.DictReader(handle))


def ci(value: float, low: float, high: float, digits: int = 3) -> str:
    return f"{value:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def signed_ci(difference: dict) -> str:
    low, high = difference["ci95"]
    return f"{difference['difference']:+.4f} [{low:+.4f}, {high:+.4f}]"


def export_records(root: Path, folder: str) -> dict:
    """An export's checks (``<folder>/export.json``) with its sizes and latencies merged in, as the report reads
    them (:func:`inspectcnn.artifacts.read_export`)."""
    from inspectcnn.artifacts import read_export

    return read_export(root / folder / "export.json", root / folder / "export_run.json")


def row_ci(row: dict, metric: str) -> str:
    """A ranking.csv row's test ``metric`` with its interval."""
    return ci(float(row[metric]), float(row[f"{metric}_ci_low"]), float(row[f"{metric}_ci_high"]))


def row_of(rows: list[dict], model: str) -> dict:
    return next(r for r in rows if r["model"] == model)


def cpu_name(run: dict) -> str:
    """The machine of a fresh_clone_run.py record, as the docs name it: "2-core AMD EPYC, AVX-512"."""
    cpu = run["cpu"]
    return f"{cpu['cores']}-core {cpu['model'].replace('(R)', '')}" + (", AVX-512" if cpu["avx512"] else "")


def facts(root: Path) -> dict[str, str]:
    """Every inline fact the docs may cite, by key, formatted as the docs show it."""
    params = yaml.safe_load((root / "params.yaml").read_text())
    summary, rows = read_json(root, "reports/summary.json"), ranking(root)
    champion = summary["champion"]
    best = row_of(rows, champion)
    evaluation = read_json(root, f"models/{champion}/eval.json")
    export, edge_export = export_records(root, "reports"), export_records(root, "reports/edge")
    edge_eval, edge_train = read_json(root, "reports/edge/eval.json"), read_json(root, "reports/edge/metrics.json")
    run = read_json(root, "benchmarks/results/fresh_clone_run.json")
    scratch = [r for r in rows if r["kind"] == "train"]
    scratch_best = max(scratch, key=lambda r: float(r["val_roc_auc"]))
    found = {
        "models.count": str(len(rows)),
        "models.scratch": str(len(scratch)),
        "scratch.roc_auc_range": f"{min(float(r['roc_auc']) for r in scratch):.2f}-"
                                 f"{max(float(r['roc_auc']) for r in scratch):.2f}",
        "scratch.best": scratch_best["model"],
        "scratch.best.test_roc_auc": f"{float(scratch_best['roc_auc']):.3f}",
        "champion": champion,
        "champion.val_roc_auc": f"{summary['champion_val']:.3f}",
        "champion.test_accuracy": row_ci(best, "accuracy"),
        "champion.test_roc_auc": row_ci(best, "roc_auc"),
        "champion.test_count": str(evaluation["count"]),
        "champion.level_2_3": "{right} of {count}".format(**evaluation["levels"]["2/3"]),
        "champion.keras_ms": f"{export['formats']['keras']['latency_b1_ms']:.0f}",
        "champion.onnx_ms": f"{export['formats']['onnx']['latency_b1_ms']:.0f}",
        "champion.onnx_int8_ms": f"{export['formats']['onnx_int8']['latency_b1_ms']:.0f}",
        "ood.test_flagged": f"{next(c for c in export['ood']['checks'] if c['set'] == 'test')['flagged']:.1%}",
        "ood.photographs_flagged": f"{next(c for c in export['ood']['checks'] if c['set'] == 'photographs')['flagged']:.0%}",
        "edge.student": edge_train["student"],
        "edge.val_roc_auc": f"{edge_train['start_val_auc']:.3f} -> {edge_train['distilled_val_auc']:.3f}",
        "edge.test_accuracy": ci(edge_eval["accuracy"], *edge_eval["ci95"]["accuracy"]),
        "edge.test_roc_auc": ci(edge_eval["roc_auc"], *edge_eval["ci95"]["roc_auc"]),
        "edge.roc_auc_minus_teacher": signed_ci(edge_eval["vs_teacher"]["roc_auc"]),
        "edge.keras_ms": f"{edge_export['formats']['keras']['latency_b1_ms']:.1f}",
        "edge.onnx_ms": f"{edge_export['formats']['onnx']['latency_b1_ms']:.1f}",
        "edge.onnx_int8_ms": f"{edge_export['formats']['onnx_int8']['latency_b1_ms']:.1f}",
        "edge.onnx_parity": f"{edge_export['formats']['onnx']['parity_max']:.1e}",
        "edge.latency_target_ms": f"{params['edge']['latency_target_ms']:g}",
        "run.minutes": f"{run['minutes']:.0f}",
        "run.cpu": cpu_name(run),
    }
    xeon = read_json(root, "benchmarks/results/fresh_clone_run_xeon.json")  # the same command on another CPU kind
    found["run.xeon.minutes"] = f"{xeon['minutes']:.0f}"
    found["run.xeon.cpu"] = cpu_name(xeon)
    levers = read_json(root, "benchmarks/results/levers.json")
    default_lever = next((r for r in levers["rows"] if r["lever"] == "default"), None)
    if default_lever is not None:  # the lever run's default against the committed run's (another machine, maybe)
        found["levers.default_val_roc_auc"] = f"{default_lever['val_roc_auc']:.3f}"
        found["levers.default_minus_committed"] = f"{default_lever['val_roc_auc'] - summary['champion_val']:+.3f}"
    if "padim" in {r["model"] for r in rows}:  # the default anomaly detector
        found["padim.test_roc_auc"] = row_ci(row_of(rows, "padim"), "roc_auc")
    for level in LEVELS:
        found[f"champion.level.{level}"] = ci(evaluation["levels"][level]["accuracy"],
                                              *evaluation["levels"][level]["ci95"], digits=2)
    return found


def results_table(root: Path) -> str:
    rows = ranking(root)
    lines = ["| rank | model | kind | test accuracy [95 % CI] | test ROC-AUC [95 % CI] | validation ROC-AUC |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        kind = {"train": "from scratch"}.get(r["kind"], r["kind"])
        lines.append(f"| {r['rank']} | `{r['model']}` | {kind} | {row_ci(r, 'accuracy')} | {row_ci(r, 'roc_auc')} | "
                     f"{float(r['val_roc_auc']):.3f} |")
    return "\n".join(lines)


def levels_table(root: Path) -> str:
    champion = read_json(root, "reports/summary.json")["champion"]
    evaluation = read_json(root, f"models/{champion}/eval.json")
    edge = read_json(root, "reports/edge/eval.json")
    lines = ["| experts' defect probability | test cells | champion: right, accuracy [95 % CI] | edge student |",
             "|---|---|---|---|"]
    for level in LEVELS:
        mine, student = evaluation["levels"][level], edge["levels"][level]
        lines.append(f"| {level} | {mine['count']} | {mine['right']}, {ci(mine['accuracy'], *mine['ci95'], digits=2)} "
                     f"| {student['right']}, {ci(student['accuracy'], *student['ci95'], digits=2)} |")
    return "\n".join(lines)


def formats_table(root: Path, folder: str) -> str:
    records = export_records(root, folder)
    lines = ["| format | file size (MiB) | batch-1 latency (ms) | test accuracy | test ROC-AUC | check |",
             "|---|---|---|---|---|---|"]
    for name, r in records["formats"].items():
        size = f"{r['size_bytes'] / 2**20:.1f}" if r.get("size_bytes") else "-"
        latency = f"{r['latency_b1_ms']:.1f}" if r.get("latency_b1_ms") else "-"
        scores = (f"{r['accuracy']:.3f} | {r['roc_auc']:.3f}" if r.get("accuracy") is not None else "- | -")
        check = "the reference" if name == "keras" else ("ok" if r.get("within_tolerance") else r.get("status", "-"))
        lines.append(f"| `{name}` | {size} | {latency} | {scores} | {check} |")
    return "\n".join(lines)


def run_table(root: Path) -> str:
    run = read_json(root, "benchmarks/results/fresh_clone_run.json")
    lines = ["| part of `make run` | minutes |", "|---|---|"]
    lines += [f"| {p['part']} | {p['minutes']:.1f} |" for p in run["parts"]]
    lines.append(f"| **all, fresh clone** | **{run['minutes']:.1f}** |")
    return "\n".join(lines)


def levers_table(root: Path) -> str:
    """The quality levers, best on validation first, each with whether params.yaml has it now."""
    levers = read_json(root, "benchmarks/results/levers.json")
    params = yaml.safe_load((root / "params.yaml").read_text())
    entry, data = params["transfer"][levers["entry"]], params["data"]

    def kept(row: dict) -> str:
        if row["lever"] == "default":
            return "-"
        overrides = {k: v for k, v in row["overrides"].items() if k != "data"}
        same = all(entry.get(k) == v for k, v in overrides.items())
        return "yes" if same and all(data.get(k) == v for k, v in row["overrides"].get("data", {}).items()) else "no"

    lines = ["| lever | validation ROC-AUC (8-view TTA) | training minutes | in the default |", "|---|---|---|---|"]
    lines += [f"| {r['lever']}: {r['what']} | {r['val_roc_auc']:.4f} | {r['minutes']:.1f} | {kept(r)} |"
              for r in sorted(levers["rows"], key=lambda r: -r["val_roc_auc"])]
    return "\n".join(lines)


def peer_table(root: Path) -> str:
    peer = read_json(root, "benchmarks/results/peer_ratio.json")
    lines = ["| training path (ResNet-18, 64 px, batch 32, 2 threads) | images/s | vs PyTorch eager |", "|---|---|---|"]
    for name, r in peer["rows"].items():
        if "images_per_s" in r:
            ratio = f"{r['vs_torch']:.2f}" if r.get("vs_torch") else "-"
            lines.append(f"| `{name}` ({r.get('runtime', '')}) | {r['images_per_s']:.1f} | {ratio} |")
    return "\n".join(lines)


KEY = re.compile(r"^( *)([\w-]+):(.*)$")


def split_comment(text: str) -> tuple[str, str]:
    """``value  # comment`` -> (value, comment); a ``#`` inside quotes is not a comment."""
    quoted = False
    for i, ch in enumerate(text):
        if ch in "'\"":
            quoted = not quoted
        elif ch == "#" and not quoted and (i == 0 or text[i - 1] == " "):
            return text[:i].strip(), text[i + 1:].strip()
    return text.strip(), ""


def params_reference(root: Path) -> str:
    """Every section and key of params.yaml with its default and the comment beside or above it."""
    sections: list[dict] = []
    pending: list[str] = []  # comment lines waiting for the key below them
    last = None
    for line in (root / "params.yaml").read_text().splitlines():
        stripped = line.strip()
        if not stripped:
            pending, last = [], None
            continue
        if stripped.startswith("#"):
            indent = len(line) - len(line.lstrip())
            if last is not None and indent > 8:  # an aligned comment continuing the row above
                last["what"] += " " + stripped.lstrip("# ").strip()
            else:
                pending.append(stripped.lstrip("#").strip())
            continue
        found = KEY.match(line)
        if not found:
            continue
        indent, name, rest = len(found.group(1)), found.group(2), found.group(3)
        value, comment = split_comment(rest)
        if indent == 0:
            sections.append({"name": name, "about": " ".join(pending + ([comment] if comment and not value else [])),
                             "rows": []})
            if value:
                last = {"key": name, "value": value, "what": comment}
                sections[-1]["rows"].append(last)
            else:
                last = None
        else:
            prefix = "" if indent == 2 else next((r["key"] + "." for r in reversed(sections[-1]["rows"])
                                                  if r.get("depth") == indent - 2), "")
            last = {"key": prefix + name, "value": value, "what": " ".join(pending + [comment]).strip(), "depth": indent}
            sections[-1]["rows"].append(last)
        pending = []
    lines = []
    for section in sections:
        lines += [f"### `{section['name']}`", ""]
        if section["about"]:
            lines += [section["about"], ""]
        lines += ["| key | default | what it does |", "|---|---|---|"]
        for row in section["rows"]:
            cell = lambda text: text.replace("|", "\\|")
            lines.append(f"| `{row['key']}` | `{cell(row['value']) or '(section)'}` | {cell(row['what'])} |")
        lines.append("")
    return "\n".join(lines).rstrip()


def figure_inputs(root: Path) -> tuple[dict, dict, float, str]:
    export, edge = export_records(root, "reports"), export_records(root, "reports/edge")
    target = float(edge.get("latency_target_ms") or 10.0)
    digest = hashlib.sha256(json.dumps([export, edge, target], sort_keys=True).encode()).hexdigest()[:12]
    return export, edge, target, digest


def write_figure(root: Path) -> None:
    """docs/figures/accuracy_latency.png: the report's own accuracy-versus-latency figure of these files."""
    import base64

    from inspectcnn.report.pages import accuracy_latency_figure

    export, edge, target, _ = figure_inputs(root)
    png = accuracy_latency_figure(export, edge, target, (f"champion {export['champion']} (8-view TTA)",
                                                         "edge student (one view)"))
    (root / FIGURE).parent.mkdir(parents=True, exist_ok=True)
    (root / FIGURE).write_bytes(base64.b64decode(png))


def figure_block(root: Path, doc: Path) -> str:
    *_, digest = figure_inputs(root)
    relative = Path("..") / FIGURE if doc.parent.name == "docs" else FIGURE
    return (f"![Test accuracy against batch-1 latency: the champion and the edge student in every export format]"
            f"({relative.as_posix()})\n<!-- drawn from reports/export*.json and reports/edge/export*.json, "
            f"inputs sha256 {digest} -->")


BLOCKS = {
    "results": lambda root, doc: results_table(root),
    "levels": lambda root, doc: levels_table(root),
    "formats.champion": lambda root, doc: formats_table(root, "reports"),
    "formats.edge": lambda root, doc: formats_table(root, "reports/edge"),
    "run": lambda root, doc: run_table(root),
    "levers": lambda root, doc: levers_table(root),
    "peer_ratio": lambda root, doc: peer_table(root),
    "figure.accuracy_latency": figure_block,
    "params": lambda root, doc: params_reference(root),
}


def documents(root: Path) -> list[Path]:
    return sorted({p for pattern in DOCS for p in root.glob(pattern)})


def render(text: str, root: Path, doc: Path, known: dict[str, str], problems: list[str]) -> str:
    """``text`` with every marker rewritten; each unknown key appended to ``problems``."""
    def fact(match: re.Match) -> str:
        key = match.group(1)
        if key not in known:
            problems.append(f"{doc.relative_to(root)}: unknown fact {key!r} (known: {', '.join(sorted(known))})")
            return match.group(0)
        return f"<!-- fact:{key} -->{known[key]}<!-- /fact -->"

    def block(match: re.Match) -> str:
        key = match.group(2)
        if key not in BLOCKS:
            problems.append(f"{doc.relative_to(root)}: unknown block {key!r} (known: {', '.join(BLOCKS)})")
            return match.group(0)
        return f"{match.group(1)}{BLOCKS[key](root, doc)}\n{match.group(4)}"

    return BLOCK.sub(block, FACT.sub(fact, text))


def differences(old: str, new: str, doc: str) -> list[str]:
    """One line per marker whose text differs: the document's and the result files'."""
    found = []
    for pattern, kind in ((FACT, "fact"), (BLOCK, "block")):
        before, after = list(pattern.finditer(old)), list(pattern.finditer(new))
        for a, b in zip(before, after):
            if a.group(0) != b.group(0):
                key = a.group(1) if kind == "fact" else a.group(2)
                said = a.group(2) if kind == "fact" else a.group(3).strip()
                due = b.group(2) if kind == "fact" else b.group(3).strip()
                if kind == "block":  # the first line that differs, not the whole table
                    pairs = [(x, y) for x, y in zip(said.splitlines() + [""] * 99, due.splitlines() + [""] * 99) if x != y]
                    said, due = pairs[0] if pairs else (said, due)
                found.append(f"{doc}: {kind} {key} says {said[:160]!r}, the result files say {due[:160]!r}")
    return found


def stray_figures(text: str, doc: str) -> list[str]:
    """Run figures typed outside a marker (code and markers left out)."""
    bare = CODE.sub("", BLOCK.sub("", FACT.sub("", text)))
    bare = re.sub(r"<!--.*?-->", "", bare, flags=re.S)
    return [f"{doc}: {m.group(0)!r} looks like a run figure typed by hand: put it in a fact (docs/generate.py)"
            for m in STRAY.finditer(bare)]


def line_start_facts(text: str, doc: str) -> list[str]:
    """Facts that open a line: Markdown takes a line that starts with ``<!--`` for an HTML block, which ends
    the paragraph there (the figure would stand alone, the sentence broken in two)."""
    bare = CODE.sub("", text)
    return [f"{doc}: a fact opens a line ({line.strip()[:60]!r}): move a word in front of it, or Markdown breaks "
            "the paragraph there" for line in bare.splitlines() if line.lstrip().startswith("<!-- fact:")]


def run(root: Path = ROOT, check: bool = False) -> list[str]:
    """Regenerate (or, with ``check``, compare) every document; the problems found."""
    known, problems = facts(root), []
    for doc in documents(root):
        name = str(doc.relative_to(root))
        old = doc.read_text()
        new = render(old, root, doc, known, problems)
        problems += stray_figures(old, name) + line_start_facts(old, name)
        if check:
            problems += differences(old, new, name)
        elif new != old:
            doc.write_text(new)
    if check and not (root / FIGURE).is_file():
        problems.append(f"{FIGURE} is missing: run make docs")
    if not check:
        write_figure(root)
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a document is stale")
    parser.add_argument("--root", type=Path, default=ROOT)
    args = parser.parse_args()
    problems = run(args.root, args.check)
    for line in problems:
        print(line, file=sys.stderr)
    if problems:
        sys.exit(1)
    print("docs: every figure matches the result files" if args.check else
          f"docs: figures written from the result files ({', '.join(str(d.relative_to(args.root)) for d in documents(args.root))}; {FIGURE})")


if __name__ == "__main__":
    main()
