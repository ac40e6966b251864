"""The README's "Your own model" snippet runs as written (with fewer steps, to keep the suite fast)."""

from __future__ import annotations

import re
from pathlib import Path

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_the_your_own_model_snippet_runs_as_written():
    section = README.split("## Your own model", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)
    assert "steps=2000" in code
    namespace: dict = {}
    exec(compile(code.replace("steps=2000", "steps=40").replace("probe_every=100", "probe_every=20"), "README", "exec"),
         namespace)  # fmt: skip
    result = namespace["result"]
    assert result.status == "finished" and result.final["lambda_1"] > 0
    assert result.final["test_loss"] < 2.3  # below chance (ln 10) after 40 steps
