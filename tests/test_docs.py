"""Run every ```python block of the READMEs and of docs/*.md, so the docs cannot drift.

Each document's blocks run in order in one namespace (a later block may use names an
earlier one defined), inside a temporary working folder. Blocks are compiled with the
document's path as the file name and their own line numbers, so a traceback points at
the failing line of the markdown file. Shell blocks (installs, the test command, long
trainings) are left to .ci/run.
"""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
READMES = ("README.md", "README.zh-CN.md")
DOCUMENTS = READMES + tuple(sorted(str(path.relative_to(ROOT)) for path in (ROOT / "docs").glob("*.md")))

# An opening fence of exactly "```python" and the next closing "```", both at column 0.
PYTHON_BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)

# .ci/run finds each marker line and runs, verbatim, the first line of the bash block
# that opens on the next line.
CI_COMMANDS = {
    "<!-- ci:main -->": 'pip install -e ".[examples]" && python examples/char_lstm.py',
    "<!-- ci:test -->": 'pip install -e ".[test,examples]" && python -m pytest',
}


def python_blocks(text):
    """Return (first line number, code) for every python block of a markdown text."""
    blocks = []
    for match in PYTHON_BLOCK.finditer(text):
        first_line = text.count("\n", 0, match.start(1)) + 1
        blocks.append((first_line, match.group(1)))
    return blocks


def test_extractor_finds_blocks_and_lines():
    text = "intro\n```python\nx = 1\n```\n\n```bash\nls\n```\n```python\ny = x + 1\nz = y\n```\n"

    blocks = python_blocks(text)

    assert [code for _, code in blocks] == ["x = 1\n", "y = x + 1\nz = y\n"]
    assert [line for line, _ in blocks] == [3, 10]


@pytest.mark.parametrize("document", READMES)
def test_readme_exists_with_python_blocks(document):
    path = ROOT / document
    assert path.is_file(), f"{document} is missing"
    assert python_blocks(path.read_text(encoding="utf-8")), f"{document} has no ```python block to run"


@pytest.mark.parametrize("document", DOCUMENTS)
def test_document_python_blocks_run(document, tmp_path, monkeypatch):
    import minireparam.backend as backend
    from minireparam.random import default_generator

    path = ROOT / document
    namespace = {"__name__": "__docs__"}

    # A block may switch the backend or draw from the default generator. Both are restored,
    # so the tests that run later see the state they would see without this one.
    backend_before = backend.get_backend()
    generator_state = default_generator().state_dict()
    monkeypatch.chdir(tmp_path)  # blocks that write files write them here
    try:
        for first_line, code in python_blocks(path.read_text(encoding="utf-8")):
            # Pad with newlines so the compiled code's line numbers are the document's.
            padded = "\n" * (first_line - 1) + code
            exec(compile(padded, str(path), "exec"), namespace)  # noqa: S102  (running the docs is the test)
    finally:
        backend.set_backend(backend_before)
        default_generator().load_state_dict(generator_state)


def test_readme_keeps_ci_command_blocks():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()

    for marker, command in CI_COMMANDS.items():
        assert marker in lines, f"README.md lacks the line {marker}, which .ci/run looks for"
        position = lines.index(marker)
        assert lines[position + 1] == "```bash", f"the line after {marker} must open a ```bash block"
        assert lines[position + 2] == command, f"the command after {marker} changed: {lines[position + 2]!r}"


def test_readmes_link_to_each_other():
    english = (ROOT / "README.md").read_text(encoding="utf-8")
    chinese = (ROOT / "README.zh-CN.md").read_text(encoding="utf-8")

    assert "(README.zh-CN.md)" in english
    assert "(README.md)" in chinese
