"""The configuration reference: docs/config.md is what the generator prints from the schema and YAML."""

from pathlib import Path

import pytest

from rollout.core.config import RolloutConfig
from rollout.core.config.reference import MARKERS, START, main, reference, schema_named
from rollout.core.config.schema import walk
from rollout.core.failures import InvalidInput
from rollout.core.markers import between_markers
from rollout.pool.config import RayConfig, RetryConfig
from rollout.sweep.config import SweepConfig

ROOT = Path(__file__).resolve().parents[2]
DOC = "docs/config.md"
DOCUMENTED = "rollout.sweep.config:SweepConfig"


def test_docs_reference_is_generated_from_the_schema():
    in_docs = between_markers((ROOT / DOC).read_text(), MARKERS)
    assert in_docs is not None, f"{DOC} lacks the {START} / end markers"
    assert in_docs == reference(SweepConfig), f"regenerate: python -m rollout.core.config.reference {DOCUMENTED} --write {DOC}"


@pytest.mark.parametrize("schema", [RolloutConfig, SweepConfig, RayConfig, RetryConfig])
def test_every_field_has_one_line_of_help(schema):
    missing = [key for key, f, _ in walk(schema) if not f.metadata.get("help", "").strip()]
    assert not missing, f"fields without help: {missing}"
    multi_line = [key for key, f, _ in walk(schema) if "\n" in f.metadata["help"].strip()]
    assert not multi_line, f"help longer than one line: {multi_line}"


def rows(text: str) -> dict[str, list[str]]:
    """key -> the cells of its table row."""
    out = {}
    for line in text.splitlines():
        if line.startswith("| `"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            out[cells[0].strip("`")] = cells
    return out


def test_the_reference_has_a_row_per_key_with_yaml_defaults_and_schema_choices():
    table = rows(reference(SweepConfig))
    keys = [key for key, _, type_hint in walk(SweepConfig) if not hasattr(type_hint, "__dataclass_fields__")]
    assert sorted(table) == sorted(keys)
    assert table["llm.base_url"][2] == "env `OPENAI_BASE_URL`, else `null`"  # the YAML's, not the schema's None
    assert table["sampling.preset"][2] == "`train` (`SweepConfig`: `eval`)"  # sweep.yaml changes it
    assert table["sampling.temperature"][2] == "`1.0` (`SweepConfig`: `0.0`)"  # through the eval preset
    assert table["ray.worker_start_timeout_s"][1:3] == ["float", "`300.0`"]
    assert table["llm.capture"][3] == "`token_ids`, `tokens_as_ids`, `token_in`, `null`"
    assert table["env.backend"][3] == "`local`, `aenv`"
    assert table["domains"][1:3] == ["list[str]", "`[airline, retail, telecom, mock]`"]


def test_the_reference_does_not_depend_on_the_environment(monkeypatch):
    before = reference(SweepConfig)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://elsewhere:1/v1")
    assert reference(SweepConfig) == before


def test_write_replaces_only_the_part_between_the_markers(tmp_path, capsys):
    doc = tmp_path / "config.md"
    doc.write_text(f"intro\n{START}\nstale\n<!-- config-reference:end -->\ntail\n")
    assert main([DOCUMENTED, "--write", str(doc)]) == 0
    text = doc.read_text()
    assert text.startswith(f"intro\n{START}\n") and text.endswith("<!-- config-reference:end -->\ntail\n")
    assert between_markers(text, MARKERS) == reference(SweepConfig) and "stale" not in text
    assert main([]) == 0 and capsys.readouterr().out.endswith(reference(RolloutConfig))
    (tmp_path / "bare.md").write_text("no markers here")
    assert main([DOCUMENTED, "--write", str(tmp_path / "bare.md")]) == 2
    assert "no <!-- config-reference:start --> ... <!-- config-reference:end --> markers" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["rollout.core.config:NoSuch", "no.such.module:X", "rollout.core.config:load_config"])
def test_a_bad_schema_name_is_one_line(name, capsys):
    with pytest.raises(InvalidInput):
        schema_named(name)
    assert main([name]) == 2 and capsys.readouterr().err.startswith("error: ")
