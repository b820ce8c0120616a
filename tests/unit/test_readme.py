"""The README stays true: its configuration table lists exactly the settings that exist."""

from __future__ import annotations

import re

from dispatch.settings import REPO_DIR, Settings


def test_every_setting_is_documented_and_every_documented_setting_exists() -> None:
    readme = (REPO_DIR / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `YOUHU_([A-Z0-9_]+)` \|", section, flags=re.M))
    fields = {name.upper() for name in Settings.model_fields}
    assert documented == fields


def test_readme_names_the_two_commands() -> None:
    readme = (REPO_DIR / "README.md").read_text(encoding="utf-8")
    assert "make demo" in readme and "make test" in readme
