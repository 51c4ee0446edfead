"""The README's Python examples run as written."""
import os
import re

import pytest

README = os.path.join(os.path.dirname(__file__), "..", "README.md")
BLOCKS = re.findall(r"```python\n(.*?)```", open(README).read(), re.S) if os.path.exists(README) else []


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_python_block_runs(code):
    exec(compile(code, "README.md", "exec"), {})


def test_readme_starts_with_install_and_test_commands():
    lines = [ln.strip() for ln in open(README).read().splitlines() if ln.strip() and not ln.startswith("#")]
    assert lines[0] == "```bash"
    assert lines[1].startswith("pip install ") and "convkern" in lines[1]
    assert lines[2].startswith('pip install ".[test]"')
