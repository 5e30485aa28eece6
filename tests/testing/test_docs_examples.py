"""The examples of docs/14-testing-plugin.md run as written: every ``python`` block
that defines tests (and has no ``...`` placeholder) is executed, and each of its
``test_*`` functions is called with the plugin's fixtures it names. Cost: 8-14 s."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "14-testing-plugin.md"
BLOCK = re.compile(r"```python\n(.*?)```", re.S)


def _examples() -> list[tuple[str, str]]:
    found = []
    for code in BLOCK.findall(DOC.read_text(encoding="utf-8")):
        if "def test_" not in code or "..." in code:
            continue
        for name in re.findall(r"^def (test_\w+)", code, re.M):
            found.append((name, code))
    return found


EXAMPLES = _examples()


def test_the_doc_has_examples_for_each_client() -> None:
    text = "".join(code for _, code in EXAMPLES)
    for client in ("from confluent_kafka import", "from kafka import", "from aiokafka import"):
        assert client in text
    assert len(EXAMPLES) >= 4


@pytest.mark.parametrize(("name", "code"), EXAMPLES, ids=[name for name, _ in EXAMPLES])
def test_example(name: str, code: str, request: pytest.FixtureRequest) -> None:
    namespace: dict[str, object] = {"__name__": f"doc_example_{name}"}
    exec(compile(code, f"{DOC.name}:{name}", "exec"), namespace)  # noqa: S102 - our own docs
    fn = namespace[name]
    assert callable(fn)
    args = {p: request.getfixturevalue(p) for p in inspect.signature(fn).parameters}
    fn(**args)
