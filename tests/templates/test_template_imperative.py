"""The imperative API (Astro-WISE model): set_variable, begin_block, update_block, ..."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from dibble.templates import Template, TemplateBlockError, TemplateWarning

PAGE = (
    "<h1>${TITLE}</h1>\n"  # 1
    "${_BEGIN_GROUP}<h2>${GROUP}</h2>\n"  # 2
    "${_BEGIN_ROW}<p>${NAME} in ${GROUP}"  # 3
    "${_BEGIN_TAG} #${TAG}${_END_TAG}</p>\n"  # 3
    "${_END_ROW}${_END_GROUP}"  # 4
    "${_BEGIN_ERROR}<b>${MESSAGE}</b>${_END_ERROR}"  # 4
)


def fill(template: Template) -> None:
    template.set_variable("TITLE", "Fruit & veg")
    for group, names in [("fruit", ["apple", "pear"]), ("veg", [])]:
        template.begin_block("GROUP")
        template.set_block_variable("GROUP", group)
        for name in names:
            template.begin_block("ROW")
            template.set_block_variable("NAME", name)
            for tag in name[:2]:
                template.begin_block("TAG")
                template.set_block_variable("TAG", tag)
                template.update_block("TAG")
            template.update_block("ROW")
        template.update_block("GROUP")


EXPECTED = (
    "<h1>Fruit &amp; veg</h1>\n"
    "<h2>fruit</h2>\n<p>apple in fruit #a #p</p>\n<p>pear in fruit #p #e</p>\n"
    "<h2>veg</h2>\n"
)


def test_nested_blocks_filled_imperatively_three_deep() -> None:
    template = Template(PAGE)
    fill(template)
    assert template.get_html() == EXPECTED


def test_imperative_result_equals_render_with_nested_lists() -> None:
    rendered = Template(PAGE).render(
        TITLE="Fruit & veg",
        GROUP=[
            {
                "GROUP": "fruit",
                "ROW": [
                    {"NAME": "apple", "TAG": [{"TAG": "a"}, {"TAG": "p"}]},
                    {"NAME": "pear", "TAG": [{"TAG": "p"}, {"TAG": "e"}]},
                ],
            },
            {"GROUP": "veg", "ROW": []},
        ],
    )
    assert rendered == EXPECTED


def test_get_html_is_repeatable_and_reset_clears() -> None:
    template = Template(PAGE)
    fill(template)
    assert template.get_html() == template.get_html()
    template.reset()
    assert template.get_html() == "<h1></h1>\n"


def test_render_ignores_imperative_state() -> None:
    template = Template(PAGE)
    fill(template)
    assert template.render(TITLE="x") == "<h1>x</h1>\n"
    assert template.get_html() == EXPECTED


def test_set_variables_takes_a_mapping_or_pairs() -> None:
    template = Template("${A}${B}${C}")
    template.set_variables({"A": 1, "B": 2})
    template.set_variables([("C", 3), ("A", 4)])
    assert template.get_html() == "423"


def test_insert_repeating_block_is_update_block() -> None:
    template = Template("${_BEGIN_R}${V};${_END_R}")
    for value in "ab":
        template.begin_block("R")
        template.set_block_variable("V", value)
        template.insert_repeating_block("R")
    assert template.get_html() == "a;b;"


def test_insert_block_adds_one_whole_repetition() -> None:
    template = Template(PAGE)
    template.set_variable("MESSAGE", "outer <b>")
    template.insert_block("ERROR")
    template.insert_block("ERROR", {"MESSAGE": "own"})
    assert template.get_html() == "<h1></h1>\n<b>outer &lt;b&gt;</b><b>own</b>"


def test_set_block_variables_and_outward_resolution() -> None:
    template = Template("${_BEGIN_R}${A}${B}${_END_R}")
    template.set_variable("B", "top")
    template.begin_block("R")
    template.set_block_variables({"A": 1})
    template.update_block("R")
    template.begin_block("R")
    template.set_block_variables([("A", 2), ("B", "own")])
    template.update_block("R")
    assert template.get_html() == "1top2own"


def test_after_an_inner_update_variables_go_to_the_outer_repetition() -> None:
    template = Template("${_BEGIN_O}${X}:${_BEGIN_I}${Y}${_END_I};${_END_O}")
    template.begin_block("O")
    template.begin_block("I")
    template.set_block_variable("Y", "y")
    template.update_block("I")
    template.set_block_variable("X", "x")  # goes to O: I is closed
    template.update_block("O")
    assert template.get_html() == "x:y;"


def test_inner_repetitions_belong_to_the_open_outer_repetition() -> None:
    template = Template("${_BEGIN_O}(${_BEGIN_I}${Y}${_END_I})${_END_O}")
    for outer in range(3):
        template.begin_block("O")
        for inner in range(outer):
            template.begin_block("I")
            template.set_block_variable("Y", inner)
            template.update_block("I")
        template.update_block("O")
    assert template.get_html() == "()(0)(01)"


def test_beginning_an_inner_block_opens_its_outer_block() -> None:
    template = Template("${_BEGIN_O}(${_BEGIN_I}${Y}${_END_I})${_END_O}")
    template.begin_block("I")
    template.set_block_variable("Y", 1)
    template.update_block("I")
    template.update_block("O")
    assert template.get_html() == "(1)"


def test_update_without_begin_appends_a_repetition_without_values() -> None:
    template = Template("${_BEGIN_R}[${V}]${_END_R}")
    template.set_variable("V", "top")
    template.update_block("R")
    template.update_block("R")
    assert template.get_html() == "[top][top]"


def test_blocks_never_updated_render_nothing() -> None:
    assert Template(PAGE).get_html() == "<h1></h1>\n"


def test_begin_twice_drops_the_unfinished_repetition() -> None:
    template = Template("${_BEGIN_R}${V}${_END_R}")
    template.begin_block("R")
    template.set_block_variable("V", "lost")
    template.begin_block("R")
    template.set_block_variable("V", "kept")
    template.update_block("R")
    assert template.get_html() == "kept"


def test_unknown_block_names_the_template_and_suggests() -> None:
    template = Template(PAGE, name="page.html")
    with pytest.raises(TemplateBlockError) as info:
        template.begin_block("ROWS")
    assert info.value.template == "page.html"
    assert info.value.line is None
    assert str(info.value) == (
        "page.html: no block named 'ROWS' (blocks: GROUP, ROW, TAG, ERROR); did you mean 'ROW'?"
    )
    for method in (template.update_block, template.insert_block, template.insert_repeating_block):
        with pytest.raises(TemplateBlockError):
            method("NOPE")


def test_set_block_variable_without_an_open_block() -> None:
    template = Template(PAGE, name="page.html")
    with pytest.raises(TemplateBlockError, match=r"page.html: set_block_variable\(\) needs"):
        template.set_block_variable("NAME", 1)
    template.begin_block("ROW")
    template.update_block("ROW")
    template.update_block("GROUP")
    with pytest.raises(TemplateBlockError):
        template.set_block_variables({"NAME": 1})


def test_save_writes_the_page(tmp_path: Path) -> None:
    template = Template("${A} €")
    template.set_variable("A", "ü")
    target = tmp_path / "out.html"
    template.save(target)
    assert target.read_text(encoding="utf-8") == "ü €"


def test_from_file(tmp_path: Path) -> None:
    path = tmp_path / "t.html"
    path.write_text("\ufeff<p>${X}</p>", encoding="utf-8")
    template = Template.from_file(path)
    assert template.name == str(path)
    template.set_variable("X", 1)
    assert template.get_html() == "<p>1</p>"


# -- warnings -----------------------------------------------------------------


def test_warns_about_unused_and_unfilled_but_not_unfilled_blocks() -> None:
    template = Template(PAGE, name="page.html", warn_on_not_used_vars=True)
    template.set_variable("TITEL", "typo")
    template.begin_block("GROUP")
    template.set_block_variable("GROUP", "g")
    template.set_block_variable("COLOUR", "red")
    template.update_block("GROUP")
    with pytest.warns(TemplateWarning) as caught:
        template.get_html()
    assert [str(warning.message) for warning in caught.list] == [
        "page.html: value 'TITEL' is set but the template never uses it",
        "page.html, line 1: variable ${TITLE} is never filled",
        "page.html, line 2: value 'COLOUR' in a row of block GROUP is never used by the block",
    ]
    assert all(warning.filename == __file__ for warning in caught.list)


def test_fully_filled_template_gives_no_warning() -> None:
    template = Template(PAGE, warn_on_not_used_vars=True)
    fill(template)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert template.get_html() == EXPECTED


def test_warns_about_repetitions_begun_but_never_updated() -> None:
    template = Template("${_BEGIN_R}${V}${_END_R}", name="r.html", warn_on_not_used_vars=True)
    template.begin_block("R")
    template.set_block_variable("V", 1)
    with pytest.warns(TemplateWarning, match="block R .line 1. was begun but never updated") as a:
        template.begin_block("R")
    assert a.list[0].filename == __file__
    with pytest.warns(TemplateWarning, match="left out") as b:
        template.get_html()
    assert b.list[0].filename == __file__
