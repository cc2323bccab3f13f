"""The README's configuration table is `courier config-doc`'s, option for option."""

from __future__ import annotations

from pathlib import Path

from component.config import markdown_table

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_config_table_is_config_doc() -> None:
    text = README.read_text()
    start = text.index("| option (TOML `[section] key`)")
    end = text.index("\n\n", start)
    assert text[start:end].strip() == markdown_table().strip(), "run `courier config-doc` and paste it"
