"""The usage examples of the seed documents, as runnable text.

The seeds are PDF exports: a line the PDF wrapped goes on in the next line after ``↳ `` (arrow and
space). Joining those is the only change made to a script; everything else is the seed's text as it
stands, so the tests run exactly what a user copies from the document.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import SHARED_DATA

SEEDS = SHARED_DATA.parent / "seeds"
SEED_000 = SEEDS / "000_deacf40badd9f18d.txt"
PDF_CONTINUATION = "\n↳ "
SEED_000_SCRIPTS = {
    "1.3.1": "submit_task.py",
    "1.3.2": "get_status.py",
    "1.3.3": "get_run_id.py",
    "1.3.4": "cancel_task.py",
}
"""Section of seed 000 to the file its script is kept in (examples/seed_000/)."""
COPIES = Path(__file__).resolve().parents[2] / "examples" / "seed_000"


def code_block_after(text: str, heading: str) -> str:
    """The first fenced code block after the heading ``### <heading> ...``, continuations joined."""
    match = re.search(rf"^### {re.escape(heading)} .*?\n```\n(.*?)```", text, flags=re.MULTILINE | re.DOTALL)
    if match is None:
        raise LookupError(f"no code block after section {heading}")
    return match.group(1).replace(PDF_CONTINUATION, "")


def seed_000_scripts(seed: Path = SEED_000) -> dict[str, str]:
    """File name to script text, extracted from the seed document itself."""
    text = seed.read_text(encoding="utf-8")
    return {name: code_block_after(text, section) for section, name in SEED_000_SCRIPTS.items()}
