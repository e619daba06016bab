"""The docs are tested: a renamed function, command or option breaks a test, not a reader.

Every fenced block of README.md and docs/*.md is collected (the conventions are in
docs/reading-guide.md, "Writing docs"):

- ```python blocks run, each page's blocks in order in one namespace, in a temporary
  working directory with TINYASC_HOME pointing into it. A block right after
  `<!-- not-run: reason -->` is only compiled.
- ```bash / ```sh / ```shell blocks are commands, ```console blocks are commands after `$ `:
  every `tinyasc ...` is parsed against the real click CLI (subcommand resolved, options
  and arguments converted, nothing executed), every `pip install` must name extras that
  pyproject.toml defines, every `python script.py` / `python -m module` must exist.
- untagged ``` blocks are diagrams or output, but a line in them that starts with
  `tinyasc `, `pip install` or `python ` is checked as a command all the same.
- ```text blocks are output and are not checked; any other language fails the test (a block
  the collector cannot check must not look checked). Fences may be indented (list items) and
  use ~~~.
- the README's `tinyasc train` example runs, and its printed output must match the README's.
- a block right after `<!-- excerpt: path#Lm-Ln -->` quotes lines m..n of that file and
  must equal them (after removing the common indentation).

Besides the blocks: an inline code span that is a tinyasc command is parsed too (missing
required values allowed, CAPITALISED placeholders filled in); a backticked name that looks like
code must still be in the code (`tinyasc.x.y` must import); relative links and images must
resolve (line anchors within the file and, for a link whose text is a backticked name, still
holding that name; heading anchors to a heading); a backticked repository path must exist; in
a table row naming `.py` files every backticked name must be defined in one of them. And the
figures command (`tinyasc figures`) is tested on a made-up experiment folder.
"""
import builtins
import contextlib
import io
import re
import shlex
import textwrap
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

import click
import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
SHELL = {"bash", "sh", "shell", "console"}

# An opening fence: up to three spaces of indentation (a block inside a list item), three or more
# backticks or tildes, and an info string whose first word is the language. A fence the collector
# did not recognise would make its block prose, unchecked, and shift every later block.
FENCE = re.compile(r"^( {0,3})(`{3,}|~{3,})\s*([\w+-]*)[^`]*$")
KNOWN_LANGS = {"python", "text", ""} | {"bash", "sh", "shell", "console"}
MARKER = re.compile(r"^<!--\s*(not-run|excerpt):\s*(.*?)\s*-->$")


@dataclass
class Block:
    page: Path
    line: int      # 1-based line of the first code line (after the opening fence)
    lang: str
    code: str
    marker: tuple  # () or ("not-run", reason) or ("excerpt", "path#Lm-Ln")

    def where(self):
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def _closes(line, fence):
    """A closing fence: the same character, at least as many, nothing after it (CommonMark)."""
    stripped = line.strip()
    return len(stripped) >= len(fence) and set(stripped) == {fence[0]}


def parse_blocks(text, page=ROOT / "page.md"):
    """Fenced blocks of a markdown text, with the marker comment just above each (if any)."""
    lines = text.splitlines()
    blocks, i = [], 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        fence, lang = match.group(2), match.group(3).lower()
        previous = next((lines[k].strip() for k in range(i - 1, -1, -1) if lines[k].strip()), "")
        marker = MARKER.match(previous)
        end = i + 1
        while end < len(lines) and not _closes(lines[end], fence):
            end += 1
        if end == len(lines):
            raise AssertionError(f"{page}:{i + 1}: code fence is never closed")
        code = textwrap.dedent("\n".join(lines[i + 1:end])) if match.group(1) else "\n".join(lines[i + 1:end])
        blocks.append(Block(page, i + 2, lang, code + "\n", marker.groups() if marker else ()))
        i = end + 1
    return blocks


def prose(text):
    """The text without fenced blocks (replaced by blank lines, so line numbers stay)."""
    out, inside = [], None
    for line in text.splitlines():
        match = FENCE.match(line)
        if inside is None and match:
            inside = match.group(2)
            out.append("")
        elif inside is not None:
            if _closes(line, inside):
                inside = None
            out.append("")
        else:
            out.append(line)
    return out


ALL_BLOCKS = [b for page in PAGES for b in parse_blocks(page.read_text(), page)]


# ------------------------------------------------------------------------------- commands

def command_lines(block):
    """(line number, command text) of the shell commands in a block."""
    if block.lang == "text" or (block.lang and block.lang not in SHELL):
        return []
    raw = block.code.splitlines()
    out, k = [], 0
    while k < len(raw):
        start, line = block.line + k, raw[k]
        while line.endswith("\\") and k + 1 < len(raw):  # continuation lines
            k += 1
            line = line[:-1] + " " + raw[k]
        k += 1
        stripped = line.strip()
        if block.lang == "console":
            if not stripped.startswith("$ "):
                continue
            stripped = stripped[2:]
        elif not block.lang and not line.startswith(("tinyasc ", "pip install", "python ", "python3 ")):
            continue
        if stripped and not stripped.startswith("#"):
            out.append((start, stripped))
    return out


def segments(command):
    """The simple commands of a shell line, split at && || ; | and without leading VAR=value."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    parts, current = [], []
    for token in lexer:
        if token and set(token) <= set(";&|"):
            parts.append(current)
            current = []
        else:
            current.append(token)
    parts.append(current)
    out = []
    for tokens in parts:
        while tokens and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", tokens[0]):
            tokens = tokens[1:]
        if tokens:
            out.append(tokens)
    return out


@contextlib.contextmanager
def _paths_need_not_exist(command):
    """Parse without checking that path arguments exist (a doc names folders of its own runs)."""
    changed = [p.type for p in command.params if isinstance(p.type, click.Path) and p.type.exists]
    for t in changed:
        t.exists = False
    try:
        yield
    finally:
        for t in changed:
            t.exists = True


PLACEHOLDER = re.compile(r"^[A-Z][A-Z0-9_]*$")  # DIR, RUN, N in prose: `tinyasc train --seed N`


def _fill_placeholders(command, args):
    """An option value written as a placeholder becomes a valid value of the option's type."""
    from tinyasc.cli import Number

    args = list(args)
    for i in range(1, len(args)):
        if PLACEHOLDER.match(args[i]) and args[i - 1].startswith("-"):
            param = next((p for p in command.params if args[i - 1] in p.opts), None)
            if param is not None and isinstance(param.type, click.Choice):
                args[i] = param.type.choices[0]
            elif param is not None and isinstance(param.type, (Number, click.types.IntParamType,
                                                               click.types.FloatParamType)):
                args[i] = "0"
    return args


def parse_cli(args, partial=False):
    """Resolve `tinyasc args...` to its command and parse its options; raises click.UsageError.

    Nothing is executed: groups are resolved by name, the final command's context is made
    (which converts every option and argument, choices and types included) and dropped.
    partial: a missing required argument or option is fine (a command named in prose).
    """
    from tinyasc.cli import main

    command, name, parent = main, "tinyasc", None
    while isinstance(command, click.Group) and args and not args[0].startswith("-"):
        if partial and PLACEHOLDER.match(args[0]):  # `tinyasc COMMAND --help`
            return command
        ctx = click.Context(command, info_name=name, parent=parent)
        name, command, args = command.resolve_command(ctx, list(args))
        parent = ctx
    if partial:
        args = _fill_placeholders(command, args)
    with _paths_need_not_exist(command), contextlib.redirect_stdout(io.StringIO()):
        try:
            command.make_context(name, list(args), parent=parent).close()
        except click.MissingParameter:
            if not partial:
                raise
        except click.exceptions.Exit as done:  # --help, --version
            if done.exit_code:
                raise click.UsageError(f"exit code {done.exit_code}") from None
    return command


def pyproject_extras():
    text = (ROOT / "pyproject.toml").read_text()
    try:
        import tomllib
    except ImportError:  # Python 3.10
        section = text.split("[project.optional-dependencies]", 1)[1].split("\n[", 1)[0]
        return set(re.findall(r"^([\w-]+)\s*=", section, re.M))
    return set(tomllib.loads(text)["project"].get("optional-dependencies", {}))


def check_command(tokens, partial=False):
    """A problem with one simple command, or None."""
    if tokens[0] == "tinyasc":
        try:
            parse_cli(tokens[1:], partial)
        except click.UsageError as exc:
            return f"`{shlex.join(tokens)}`: {exc.format_message()}"
    elif tokens[:2] == ["pip", "install"]:
        extras = {e.strip() for t in tokens[2:] for group in re.findall(r"\[([^\]]*)\]", t) for e in group.split(",")}
        unknown = extras - pyproject_extras()
        if unknown:
            return f"`{shlex.join(tokens)}`: extras {sorted(unknown)} are not in pyproject.toml"
    elif tokens[0] in ("python", "python3") and len(tokens) > 1:
        if tokens[1] == "-m" and len(tokens) > 2 and find_spec(tokens[2]) is None:
            return f"`{shlex.join(tokens)}`: no module {tokens[2]}"
        if tokens[1].endswith(".py") and not (ROOT / tokens[1]).is_file():
            return f"`{shlex.join(tokens)}`: no file {tokens[1]}"
    return None


COMMANDS = [(b, line, text) for b in ALL_BLOCKS for line, text in command_lines(b)]


@pytest.mark.parametrize("block,line,text", COMMANDS,
                         ids=[f"{b.page.name}:{line}" for b, line, _ in COMMANDS])
def test_documented_command_parses(block, line, text):
    problems = [p for tokens in segments(text) if (p := check_command(tokens))]
    assert not problems, f"{block.page.relative_to(ROOT)}:{line}: " + "; ".join(problems)


def inline_commands(page):
    """(line, text) of the inline code spans of a page's prose that are commands (tinyasc, python, pip install)."""
    return [(number, span) for number, line in enumerate(prose(page.read_text()), start=1)
            for span in re.findall(r"`([^`]+)`", line) if re.match(r"^(tinyasc|python3?|pip install) \S", span)]


INLINE = [(page, line, text) for page in PAGES for line, text in inline_commands(page)]


@pytest.mark.parametrize("page,line,text", INLINE, ids=[f"{p.name}:{line}" for p, line, _ in INLINE])
def test_inline_command_parses(page, line, text):
    problems = [p for tokens in segments(text) if (p := check_command(tokens, partial=True))]
    assert not problems, f"{page.relative_to(ROOT)}:{line}: " + "; ".join(problems)


def test_the_command_checker_has_teeth():
    assert check_command(["tinyasc", "train", "--epochs", "2"]) is None
    assert check_command(["tinyasc", "train", "--help"]) is None
    assert "No such option" in check_command(["tinyasc", "train", "--epochz", "2"])
    assert "No such command" in check_command(["tinyasc", "trian"])
    assert "'--epochs': 'two' is not an integer" in check_command(["tinyasc", "train", "--epochs", "two"])
    assert "is not one of" in check_command(["tinyasc", "train", "--norm", "batchnorm"])
    assert "Missing option" in check_command(["tinyasc", "synth"])
    assert check_command(["tinyasc", "synth"], partial=True) is None          # prose may name a bare command
    assert "No such option" in check_command(["tinyasc", "synth", "--bogus"], partial=True)
    assert check_command(["tinyasc", "synth", "--seed", "N", "--preset", "NAME"], partial=True) is None
    assert check_command(["tinyasc", "synth", "--seed", "N"]) is not None      # only prose has placeholders
    assert check_command(["tinyasc", "COMMAND", "--help"], partial=True) is None
    assert check_command(["tinyasc", "export", "no/such/run", "--onnx", "m.onnx"]) is None  # paths may not exist yet
    assert check_command(["pip", "install", "-e", ".[test,plot]"]) is None
    assert "nope" in check_command(["pip", "install", "-e", ".[test,nope]"])
    assert check_command(["python", "benchmarks/no_such_script.py"]) is not None
    assert [t[0] for t in segments("pip install -e . && TINYASC_HOME=/tmp/x tinyasc train  # a comment")] == \
        ["pip", "tinyasc"]


def test_the_docs_hold_commands_for_every_cli_command():
    """The README has one example of each command (a command nobody shows is a command nobody finds)."""
    from tinyasc.cli import main

    readme = {tokens[1] for b in ALL_BLOCKS if b.page.name == "README.md" for _, text in command_lines(b)
              for tokens in segments(text) if tokens[0] == "tinyasc" and len(tokens) > 1}
    missing = sorted(set(main.commands) - readme)
    assert not missing, f"README.md shows no example of: {missing}"


# --------------------------------------------------------------------------------- python

PYTHON_PAGES = [p for p in PAGES if any(b.lang == "python" for b in ALL_BLOCKS if b.page == p)]


@pytest.mark.parametrize("page", PYTHON_PAGES, ids=[p.name for p in PYTHON_PAGES])
def test_python_snippets_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TINYASC_HOME", str(tmp_path / "home"))
    namespace = {"__name__": "__doc_snippets__", "__builtins__": builtins}
    ran = 0
    for block in [b for b in ALL_BLOCKS if b.page == page and b.lang == "python"]:
        if block.marker and block.marker[0] == "excerpt":
            continue
        # Blank lines in front, so a traceback names the line of the markdown file.
        code = compile("\n" * (block.line - 1) + block.code, str(page), "exec")
        if block.marker and block.marker[0] == "not-run":
            continue
        with contextlib.redirect_stdout(io.StringIO()):
            exec(code, namespace)
        ran += 1
    assert ran, f"{page.name}: every python block is marked not-run"


def test_markers_are_well_formed():
    for block in ALL_BLOCKS:
        if block.marker:
            kind, value = block.marker
            assert value, f"{block.where()}: <!-- {kind}: --> needs a reason or a target"


def test_every_block_is_of_a_kind_the_collector_checks():
    """A ```py or ```json block would be neither run nor parsed: an unchecked snippet that looks checked."""
    unknown = [f"{b.where()}: ```{b.lang}" for b in ALL_BLOCKS if b.lang not in KNOWN_LANGS]
    assert not unknown, "use python, bash, console or text (docs/reading-guide.md, Writing docs): " + ", ".join(unknown)


EXCERPTS = [b for b in ALL_BLOCKS if b.marker and b.marker[0] == "excerpt"]


@pytest.mark.parametrize("block", EXCERPTS, ids=[b.where() for b in EXCERPTS])
def test_excerpt_matches_the_source(block):
    match = re.fullmatch(r"([\w./-]+)#L(\d+)-L(\d+)", block.marker[1])
    assert match, f"{block.where()}: excerpt target must be path#Lm-Ln, got {block.marker[1]!r}"
    path, first, last = ROOT / match.group(1), int(match.group(2)), int(match.group(3))
    assert path.is_file(), f"{block.where()}: {match.group(1)} does not exist"
    source = path.read_text().splitlines()[first - 1:last]
    expected = textwrap.dedent("\n".join(source)).strip("\n")
    assert textwrap.dedent(block.code).strip("\n") == expected, (
        f"{block.where()}: the excerpt no longer matches {match.group(1)} lines {first}-{last}; "
        f"those lines now read:\n{expected}")


# ---------------------------------------------------------------------- links and names

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
NAMED_LINK = re.compile(r"\[`([A-Za-z_][\w.]*)`\]\(([^)\s]+)\)")   # [`name`](path#Lm-Ln)
INLINE_CODE = re.compile(r"`([^`]+)`")


def slug(heading):
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def link_problems(page, lines):
    problems = []
    for number, line in enumerate(lines, start=1):
        for target in LINK.findall(INLINE_CODE.sub("", line)):
            if re.match(r"^[a-z]+:", target):  # http:, https:, mailto:
                continue
            path_part, _, anchor = target.partition("#")
            path = (page.parent / path_part).resolve() if path_part else page
            where = f"{page.relative_to(ROOT)}:{number}: link {target}"
            if not path.exists():
                hint = ""
                if path.parent == ROOT / "docs" / "figures":
                    hint = ("; draw it with `tinyasc figures --experiment runs/table2 "
                            "--translator runs/table2/translator --out docs/figures` (docs/figures.md)")
                problems.append(f"{where}: {path_part} does not exist{hint}")
                continue
            if not anchor:
                continue
            lines_anchor = re.fullmatch(r"L(\d+)(?:-L(\d+))?", anchor)
            if lines_anchor:
                source = path.read_text().splitlines()
                first = int(lines_anchor.group(1))
                last = int(lines_anchor.group(2) or first)
                if last > len(source):
                    problems.append(f"{where}: {path.name} has only {len(source)} lines")
                    continue
                # [`name`](file#Lm-Ln): the lines must still hold that name (they drift as the file changes)
                for name, named_target in NAMED_LINK.findall(line):
                    if named_target != target:
                        continue
                    short = re.escape(name.split('.')[-1])
                    if not re.search(rf"\b{short}\b", "\n".join(source[first - 1:last])):
                        problems.append(f"{where}: `{name}` is not in lines {first}-{last} of {path.name}")
                        continue
                    # a function or class of that file: the lines must start inside it, not at a mention
                    spans = definition_spans(source, name.split('.')[-1])
                    if spans and not any(start <= first <= end for start, end in spans):
                        problems.append(f"{where}: lines {first}-{last} of {path.name} mention `{name}`, but it is "
                                        f"defined in lines {spans[0][0]}-{spans[0][1]}")
            elif path.suffix == ".md":
                headings = {slug(h) for h in re.findall(r"^#+\s+(.*)$", "\n".join(prose(path.read_text())), re.M)}
                if anchor not in headings:
                    problems.append(f"{where}: no heading #{anchor} in {path.name}")
    return problems


def definition_spans(source, name):
    """[(first, last)] line numbers of each `def name` / `class name` in source (a list of lines):
    from its first decorator to its last non-blank line before the next statement at its indentation
    or less."""
    spans = []
    for i, text in enumerate(source):
        match = re.match(rf"(\s*)(?:async )?(?:def|class) {re.escape(name)}\b", text)
        if not match:
            continue
        indent = len(match.group(1))
        start = i
        while start > 0 and source[start - 1].strip().startswith("@"):
            start -= 1
        end = i + 1
        while end < len(source) and (not source[end].strip()
                                     or len(source[end]) - len(source[end].lstrip()) > indent):
            end += 1
        while not source[end - 1].strip():  # trailing blank lines belong to no one
            end -= 1
        spans.append((start + 1, end))
    return spans


REPO_PATH = re.compile(r"^(tinyasc|tests|benchmarks|docs)/[\w./-]*$")
IDENTIFIER = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
FILE_SUFFIXES = {"png", "csv", "json", "txt", "md", "npz", "npy", "wav", "tsv", "onnx", "toml"}


def _resolve_py(token):
    for candidate in (ROOT / token, ROOT / "tinyasc" / token):
        if candidate.is_file():
            return candidate
    return None


def _defined(name, sources):
    pattern = re.compile(rf"^\s*(?:async\s+)?(?:def|class)\s+{name}\b|^\s*{name}\s*[:=]|self\.{name}\s*=", re.M)
    return any(pattern.search(s) for s in sources)


def table_row_problems(row):
    """Backticked names in a table row that lists .py files must be defined in one of them."""
    cells = [c for c in re.split(r"(?<!\\)\|", row.strip().strip("|"))]
    tokens = [t for cell in cells for t in INLINE_CODE.findall(cell)]
    files = [t for t in tokens if t.endswith(".py")]
    if not files:
        return []
    problems, sources = [], []
    for f in files:
        path = _resolve_py(f)
        if path is None:
            problems.append(f"`{f}` does not exist")
        else:
            sources.append(path.read_text())
    if problems:
        return problems
    for token in tokens:
        if token in files or not IDENTIFIER.match(token) or token.rsplit(".", 1)[-1] in FILE_SUFFIXES:
            continue
        if not all(_defined(part, sources) for part in token.split(".")):
            problems.append(f"`{token}` is defined in none of {files}")
    return problems


CODE_NAME = re.compile(r"^([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)(\(.*\))?$")   # name, a.b.c, f(...)
# Names from other projects that the prose cites (CP-ResNet's and NumPy's code, PyTorch's state dict).
FOREIGN_NAMES = {"np", "torch", "torchaudio", "scipy", "soundfile", "cpjku_dcase19", "cpjku_dcase20",
                 "get_model_based_on_rho", "get_maxrf", "num_batches_tracked", "retain_graph"}


def _source_words():
    words = set()
    for folder in ("tinyasc", "tests", "benchmarks"):
        for path in (ROOT / folder).rglob("*.py"):
            if path == Path(__file__).resolve():  # this file spells wrong names on purpose
                continue
            words |= set(re.findall(r"[A-Za-z_]\w*", path.read_text()))
    return words


SOURCE_WORDS = _source_words()


def code_name_problem(token):
    """A backticked name in prose that the code no longer has (renamed or removed), or None.

    `tinyasc.x.y` must import and resolve; any other name that looks like code (snake_case,
    CamelCase, dotted, or called) must still occur in the sources of tinyasc/, tests/, benchmarks/.
    """
    match = CODE_NAME.match(token)
    if not match:
        return None
    parts = match.group(1).split(".")
    if parts[-1] in FILE_SUFFIXES | {"py"} or parts[0] in FOREIGN_NAMES:
        return None
    if parts[0] == "tinyasc" and len(parts) > 1:
        import importlib
        for cut in range(len(parts), 0, -1):
            try:
                obj = importlib.import_module(".".join(parts[:cut]))
            except ImportError:
                continue
            for attr in parts[cut:]:
                if not hasattr(obj, attr):
                    return f"`{token}`: {'.'.join(parts[:cut])} has no {attr}"
                obj = getattr(obj, attr)
            return None
        return f"`{token}` does not import"
    looks_like_code = (len(parts) > 1 or match.group(2) is not None
                       or any("_" in p.strip("_") or re.search(r"[a-z][A-Z]", p) for p in parts))
    missing = [p for p in parts if p not in SOURCE_WORDS]
    if looks_like_code and missing:
        return f"`{token}`: no {', '.join(missing)} in the code"
    return None


def name_problems(page, lines):
    problems = []
    for number, line in enumerate(lines, start=1):
        where = f"{page.relative_to(ROOT)}:{number}"
        for token in INLINE_CODE.findall(line):
            if REPO_PATH.match(token) and not (ROOT / token.rstrip("/")).exists():
                problems.append(f"{where}: `{token}` does not exist")
            elif (problem := code_name_problem(token)):
                problems.append(f"{where}: {problem}")
        if line.lstrip().startswith("|"):
            problems += [f"{where}: {p}" for p in table_row_problems(line)]
    return problems


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_links_and_names_resolve(page):
    lines = prose(page.read_text())
    problems = link_problems(page, lines) + name_problems(page, lines)
    assert not problems, "\n".join(problems)


def test_the_link_and_name_checks_have_teeth(tmp_path):
    page = ROOT / "docs" / "page.md"
    bad = ["[gone](../tinyasc/no_such_file.py)", "[far](../tinyasc/nn/norm.py#L100000)",
           "[nowhere](reading-guide.md#no-such-heading)", "`tinyasc/no/such/path.py`"]
    problems = link_problems(page, bad) + name_problems(page, bad)
    assert len(problems) == 4, problems
    assert table_row_problems("| eq. 3 | `tinyasc/nn/norm.py` | `ResNorm`, `FreqIN.forward` |") == []
    assert table_row_problems("| eq. 3 | `tinyasc/nn/norm.py` | `ResNormalisation` |") != []
    assert table_row_problems("| eq. 3 | `nn/norm.py` | `SubSpectralNorm` |") == []  # relative to tinyasc/
    assert link_problems(ROOT / "README.md", ["[guide](docs/reading-guide.md#the-path)"]) == []
    assert link_problems(page, ["[`ResNorm`](../tinyasc/nn/norm.py#L1-L3)"]) != []   # the lines moved away
    assert link_problems(page, ["[`np`](../tinyasc/nn/norm.py#L11-L11)"]) == []      # import numpy as np
    # lines that mention a class but start outside it: a link that drifted above its target
    assert link_problems(page, ["[`ResNorm`](../tinyasc/nn/norm.py#L5-L40)"]) != []
    assert link_problems(page, ["[`ResNorm`](../tinyasc/nn/norm.py#L32-L40)"]) == []
    assert definition_spans(["x = 1", "@deco", "def f(a):", "    return a", "", "def g():", "    f(1)"], "f") == [(2, 4)]
    # a renamed function named in prose, outside any table or link
    assert name_problems(page, ["call `freq_norm_forward_kernel` or `tinyasc.nn.ResNorm`"]) == []
    assert len(name_problems(page, ["call `freq_norm_forward_kernal`"])) == 1
    assert len(name_problems(page, ["`tinyasc.nn.ResNormalisation` and `Trainer.fitt`"])) == 2
    assert name_problems(page, ["`metrics.csv`, `--lam`, `lam * v`, `s[f]`, `x`"]) == []


def test_fences_inside_lists_and_tildes_are_collected():
    text = ("1. a step:\n\n   ```python\n   x = 1\n   ```\n\n~~~bash\ntinyasc train\n~~~\n"
            "```py title=\"x\"\ny\n````\n")
    blocks = parse_blocks(text)
    assert [(b.lang, b.code) for b in blocks] == [("python", "x = 1\n"), ("bash", "tinyasc train\n"), ("py", "y\n")]
    assert prose(text) == ["1. a step:", ""] + [""] * 10
    untagged = Block(ROOT / "page.md", 1, "", "python benchmarks/nope.py\noutput line\n", ())
    assert command_lines(untagged) == [(1, "python benchmarks/nope.py")]


def test_excerpt_and_marker_parsing(tmp_path):
    text = ("intro\n\n<!-- not-run: needs the real TAU dataset -->\n```python\nx = 1\n```\n\n"
            "```text\noutput\n```\n<!-- excerpt: tinyasc/nn/norm.py#L1-L1 -->\n\n```python\ny\n```\n")
    blocks = parse_blocks(text)
    assert [(b.lang, b.marker, b.line) for b in blocks] == [
        ("python", ("not-run", "needs the real TAU dataset"), 5), ("text", (), 9),
        ("python", ("excerpt", "tinyasc/nn/norm.py#L1-L1"), 14)]
    with pytest.raises(AssertionError, match="never closed"):
        parse_blocks("```python\nx = 1\n")


# ----------------------------------------------------------------------- the learner's path

def test_every_doc_page_is_on_the_path():
    """docs/reading-guide.md is the index: every page of docs/ is linked from it."""
    guide = (ROOT / "docs" / "reading-guide.md").read_text()
    linked = {Path(t.partition("#")[0]).name for t in LINK.findall(guide)}
    missing = sorted(p.name for p in (ROOT / "docs").glob("*.md") if p.name not in linked | {"reading-guide.md"})
    assert not missing, f"docs/reading-guide.md does not link to {missing}"


PAPER_ITEMS = [
    # sections, equations, Table 1 rows, Table 2 rows, Table 3 columns and rows, section 3.1 recipe items
    "| 2.1 ", "| 2.2 ", "| 2.3 ", "| 2.4 Model Compression: pruning", "| 2.4 Model Compression: quantization",
    "| 2.4 Model Compression: knowledge distillation", "| 3.1 ",
    "eq. 1", "eq. 2", "eq. 3",
    "conv2d 5x5, stride 2", "stage1: BC-ResBlock", "max-pool 2x2", "stage2: BC-ResBlock", "stage3: BC-ResBlock",
    "stage4: BC-ResBlock", "conv2d 1x1", "avgpool",
    "| BC-ResNet-Mod-1 (8.1k)", "BC-ResNet-Mod-1 + Global FreqNorm", "BC-ResNet-Mod-1 + FreqIN",
    "BC-ResNet-Mod-1 + Pre-ResNorm", "BC-ResNet-Mod-1 + ResNorm", "CP-ResNet, c=64", "BC-ResNet-8",
    "| BC-ResNet-Mod-8 (315k)", "BC-ResNet-Mod-8 + Pre-ResNorm", "| BC-ResNet-Mod-8 + ResNorm |",
    "Device Translator", "300epoch, KD", "+ model compress",
    "Full Dev. data", "Translator", "Model Select", "Prune Ratio (Conv)", "Bits per Param", "Ensemble",
    "#Params (total/non-zero)", "Size", "Official Split", "Submitted", "LogLoss",
    "| Model 1 |", "| Model 2 |", "| Model 3 |", "| Model 4 |",
    "16 kHz", "256", "130 ms", "30 ms", "time roll", "Mixup", "SpecAugment", "4 subbands", "dropout",
    "100 epochs", "momentum 0.9", "weight decay 0.001", "batch 64", "warm-up", "cosine", "lambda = 0.1",
]


def test_the_paper_map_covers_every_equation_and_table_row():
    guide = (ROOT / "docs" / "reading-guide.md").read_text()
    missing = [item for item in PAPER_ITEMS if item not in guide]
    assert not missing, f"docs/reading-guide.md's paper map lacks: {missing}"


def test_the_docs_have_runnable_snippets():
    """The collector sees what the pages hold (a collector that finds nothing tests nothing)."""
    python = [b for b in ALL_BLOCKS if b.lang == "python" and not b.marker]
    assert len(python) >= 15 and len(COMMANDS) >= 25 and len(EXCERPTS) >= 2


# --------------------------------------------------------------------------------- figures

def _fake_experiment(root):
    """An experiment folder as tinyasc experiment writes it, with made-up numbers."""
    from tinyasc.train.evaluate import DEVICE_COLUMNS

    root.mkdir()
    header = ["method", "norm", "extra"] + list(DEVICE_COLUMNS) + ["overall_mean", "overall_std"]
    rows = [",".join(header)]
    for i, (method, norm) in enumerate([("BC-ResNet-Mod (c=4)", "none"), ("BC-ResNet-Mod (c=4) + ResNorm", "resnorm")]):
        rows.append(",".join([method, norm, "x"] + [f"{30 + i * 5 + d:.2f}" for d in range(len(DEVICE_COLUMNS))]
                             + ["35.00", "1.50"]))
        for seed in (0, 1):
            run = root / f"{norm}-seed{seed}"
            run.mkdir()
            (run / "config.json").write_text("{}\n")
            (run / "metrics.csv").write_text("epoch,loss,lr,test_overall\n1,2.3,0.03,10\n2,2.1,0.0,20.5\n")
    (root / "table.csv").write_text("\n".join(rows) + "\n")
    (root / "not-a-run").mkdir()
    translator = root / "translator"   # what --rows ...+translator trains inside the experiment folder
    translator.mkdir()
    (translator / "config.json").write_text("{}\n")
    (translator / "metrics.csv").write_text("epoch,l2,g_adv,d_loss,lr,test_lsd_db\n1,0.5,0.3,0.2,0.0002,4.1\n")
    return root


def test_figures_command_draws_the_experiment(tmp_path):
    pytest.importorskip("matplotlib")
    from click.testing import CliRunner

    from tinyasc.cli import main

    experiment = _fake_experiment(tmp_path / "exp")
    out = tmp_path / "figs"
    result = CliRunner().invoke(main, ["figures", "--experiment", str(experiment), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "skipped the translator figure" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["table2_curves.png", "table2_devices.png"]  # no temporaries
    from tinyasc.figures import find_runs
    assert [p.name for p in find_runs(experiment)] == ["none-seed0", "none-seed1", "resnorm-seed0", "resnorm-seed1"]
    for name in ("table2_curves.png", "table2_devices.png"):
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_figures_command_asks_the_translator_for_its_figure(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    import sys
    import types

    from click.testing import CliRunner

    from tinyasc.cli import main

    calls = []

    def save_translation_figure(translator_dir, png_path, log):
        log("features: from the fake's cache")
        calls.append((Path(translator_dir), Path(png_path)))
        Path(png_path).write_bytes(b"\x89PNG\r\n\x1a\nfake")

    fake = types.ModuleType("tinyasc.translator.evaluate")
    fake.save_translation_figure = save_translation_figure
    monkeypatch.setitem(sys.modules, "tinyasc.translator.evaluate", fake)
    if find_spec("tinyasc.translator") is None:
        monkeypatch.setitem(sys.modules, "tinyasc.translator", types.ModuleType("tinyasc.translator"))
    import tinyasc.figures
    monkeypatch.setattr(tinyasc.figures, "check_translator_folder", lambda folder: calls.append(Path(folder)))
    (tmp_path / "translator").mkdir()
    out = tmp_path / "figs"
    result = CliRunner().invoke(main, ["figures", "--experiment", str(_fake_experiment(tmp_path / "exp")),
                                       "--translator", str(tmp_path / "translator"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert calls[0] == tmp_path / "translator"  # checked before anything is drawn
    assert calls[1][0] == tmp_path / "translator" and calls[1][1].suffix == ".png"
    assert "features: from the fake's cache" in result.output  # the dataset's lines reach the user
    assert (out / "translator.png").read_bytes().endswith(b"fake")
    assert sorted(p.name for p in out.iterdir()) == ["table2_curves.png", "table2_devices.png", "translator.png"]


def test_figures_errors_are_one_line(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from tinyasc.cli import main
    from tinyasc.run import plots

    runner = CliRunner()
    monkeypatch.setattr(plots, "available", lambda: False)
    result = runner.invoke(main, ["figures", "--experiment", str(tmp_path)])
    assert result.exit_code == 1 and 'pip install -e ".[plot]"' in result.output
    monkeypatch.setattr(plots, "available", lambda: True)
    result = runner.invoke(main, ["figures", "--experiment", str(tmp_path), "--out", str(tmp_path / "f")])
    assert result.exit_code == 1 and "table.csv: not found" in result.output
    (tmp_path / "table.csv").write_text("method,A,overall_mean,overall_std\nx,ten,1,0\n")
    result = runner.invoke(main, ["figures", "--experiment", str(tmp_path), "--out", str(tmp_path / "f")])
    assert result.exit_code == 1 and "line 2" in result.output and "'ten' is not a finite number" in result.output


# ------------------------------------------------------------------- the README's train run

def _readme_train_example():
    """The README's runnable `tinyasc train` example, the output block after it, and its home."""
    readme = [b for b in ALL_BLOCKS if b.page.name == "README.md"]
    k = next(k for k, b in enumerate(readme)
             if b.lang in SHELL and "tinyasc train" in b.code and "--preset tiny" in b.code)
    command, shown = readme[k], readme[k + 1]
    assert shown.lang == "text", f"{shown.where()}: the output of {command.where()} should follow it as ```text"
    home = re.search(r"TINYASC_HOME=(\S+)", command.code)
    assert home, f"{command.where()}: the example should set TINYASC_HOME, so the dataset is generated afresh"
    return segments(command.code.strip())[0], shown, home.group(1)


def _layout(text, home):
    """Output with what changes from run to run masked: timings, the cache key, the home folder."""
    text = text.replace(home, "HOME")
    text = re.sub(r"-[0-9a-f]{20}\.npy", "-KEY.npy", text)
    text = re.sub(r"\d+ clips/s", "N clips/s", text)
    return re.sub(r"\d+\.\d+", "X", text).strip().splitlines()


def test_the_readme_train_example_prints_what_the_readme_shows(tmp_path, monkeypatch):
    """README point 4: what `tinyasc train` prints and leaves behind, checked by running the example."""
    from click.testing import CliRunner

    from tinyasc.cli import main

    tokens, shown, home = _readme_train_example()
    assert tokens[0] == "tinyasc"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TINYASC_HOME", str(tmp_path / "home"))
    result = CliRunner().invoke(main, tokens[1:])
    assert result.exit_code == 0, result.output
    assert _layout(result.stdout, str(tmp_path / "home")) == _layout(shown.code, home), (
        f"{shown.where()}: the README's output no longer matches; a run now prints:\n{result.stdout}")

    # the files README.md's list says the run folder holds
    readme = (ROOT / "README.md").read_text()
    item = readme[readme.index("leaves everything in"):].split("\n\n", 1)[0]
    promised = set(re.findall(r"`([\w.]+\.(?:json|csv|npz|txt|png))`", item))
    if find_spec("matplotlib") is None:
        promised = {p for p in promised if not p.endswith(".png")}
    run = tmp_path / tokens[tokens.index("--out") + 1]
    assert promised == {p.name for p in run.iterdir()}, "README.md's list of the run folder's files is out of date"
