from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from evotrader.strategies.knowledge import (
    CATEGORIES,
    KnowledgeError,
    default_knowledge,
    default_root,
    load_knowledge,
)

SHIPPED = default_root()
TEMPLATE = (SHIPPED / "trend-following" / "moving-average-crossover.md").read_text()


def test_shipped_knowledge_base_loads_and_covers_every_family() -> None:
    knowledge = default_knowledge()
    assert len(knowledge.templates) >= 20
    for category in CATEGORIES:
        assert len(knowledge.by_category(category)) >= 2, category
    for template_id, template in knowledge.templates.items():
        assert Path(template.path) == SHIPPED / f"{template_id}.md"
        assert template.literature and template.failure_modes and template.rule
        for name, parameter in template.parameters.items():
            assert f"`{name}`" in template.rule, f"{template_id}: rule never names {name}"
            assert parameter.min <= parameter.default <= parameter.max
    assert {"concepts/look-ahead-bias", "concepts/transaction-costs"} <= set(knowledge.concepts)
    assert (
        knowledge.templates["momentum/time-series-momentum"]
        .literature[0]
        .startswith("Moskowitz, Ooi & Pedersen (2012)")
    )


def test_top_level_knowledge_folder_is_the_shipped_one() -> None:
    repo_link = Path(__file__).parents[3] / "knowledge"
    assert repo_link.resolve() == SHIPPED.resolve()


def test_parameter_grid_stays_inside_bounds() -> None:
    parameter = default_knowledge().template("trend-following/moving-average-crossover").parameters
    assert parameter["fast"].grid(3) == [2, 51, 100]
    assert parameter["slow"].grid(1) == [10]
    schema = default_knowledge().template("momentum/time-series-momentum").parameters_json_schema()
    assert schema["properties"]["lookback"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 252,
        "default": 126,
        "description": "bars in the trailing return window",
    }


def _knowledge_with(
    tmp_path: Path, text: str, where: str = "trend-following/moving-average-crossover.md"
) -> Path:
    root = tmp_path / "knowledge"
    shutil.copytree(SHIPPED, root)
    (root / where).parent.mkdir(parents=True, exist_ok=True)
    (root / where).write_text(text)
    return root


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda t: t.replace("fast: {type: int, min: 2", "fast: {type: int, min: 200"),
            "min 200 must be below max 100",
        ),
        (lambda t: t.replace("default: 20,", "default: 500,"), "default 500 lies outside [2, 100]"),
        (
            lambda t: t.replace("category: trend-following", "category: astrology"),
            "unknown category 'astrology'",
        ),
        (
            lambda t: t.replace(
                "id: trend-following/moving-average-crossover", "id: trend-following/ma"
            ),
            "does not match its path",
        ),
        (
            lambda t: t.replace("summary: Long while", "summery: Long while"),
            "missing required key(s) ['summary']",
        ),
        (
            lambda t: t.replace("type: int, min: 2", "type: integer, min: 2"),
            "type must be one of ['int', 'float']",
        ),
        (
            lambda t: t.replace("min: 2, max: 100, default: 20", "min: 2, max: 100, default: 20.5"),
            "default must be an int",
        ),
        (
            lambda t: t.replace('constraints: ["fast < slow"]', 'constraints: ["fast < medium"]'),
            "unknown parameter(s) ['medium']",
        ),
        (
            lambda t: t.replace('constraints: ["fast < slow"]', 'constraints: ["slow < fast"]'),
            "defaults break constraint 'slow < fast'",
        ),
        (
            lambda t: t.replace('constraints: ["fast < slow"]', 'constraints: ["fast ~ slow"]'),
            "must read '<param> <op> <param>'",
        ),
        (lambda t: t.replace("legs: 1", "legs: 3"), "'legs' must be 1"),
        (lambda t: t.replace("literature:\n", "literature: []\nx:\n"), "unknown key(s) ['x']"),
        (lambda t: t.replace("name: Moving", "name: [Moving"), "not valid YAML"),
        (lambda t: t[4:], "no YAML front matter"),
        (lambda t: t.split("\n---\n")[0] + "\n---\n", "body after the front matter is empty"),
    ],
)
def test_broken_template_is_rejected_naming_file_and_problem(tmp_path, change, message) -> None:
    root = _knowledge_with(tmp_path, change(TEMPLATE))
    with pytest.raises(KnowledgeError) as error:
        load_knowledge(root)
    assert "moving-average-crossover.md" in str(error.value)
    assert message in str(error.value)


def test_template_outside_its_category_folder_is_rejected(tmp_path) -> None:
    text = TEMPLATE.replace("id: trend-following/", "id: momentum/")
    root = _knowledge_with(tmp_path, text, "momentum/moving-average-crossover.md")
    expected = "id 'momentum/moving-average-crossover' must be 'trend-following/<name>'"
    with pytest.raises(KnowledgeError, match=expected):
        load_knowledge(root)


def test_concept_with_a_dangling_link_is_rejected(tmp_path) -> None:
    note = (
        "---\nid: concepts/new\ntitle: New\nsummary: S.\nrelated: [momentum/nothing]\n---\nBody.\n"
    )
    root = _knowledge_with(tmp_path, note, "concepts/new.md")
    with pytest.raises(
        KnowledgeError, match=r"new\.md: 'related' names unknown ids \['momentum/nothing'\]"
    ):
        load_knowledge(root)


def test_missing_folder_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(KnowledgeError, match="does not exist"):
        load_knowledge(tmp_path / "nowhere")
