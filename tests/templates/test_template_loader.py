"""The loader: compile once, recompile on change, stay inside the directory, be thread-safe."""

from __future__ import annotations

import os
import threading
import warnings
from pathlib import Path

import pytest

from dibble.templates import (
    Template,
    TemplateFileError,
    TemplateLoader,
    TemplateSyntaxError,
    TemplateWarning,
    _compiler,
    _loader,
)


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    (tmp_path / "page.html").write_text("<p>${X}</p>", encoding="utf-8")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "inner.html").write_text("${_BEGIN_R}${V}${_END_R}", encoding="utf-8")
    return tmp_path


def touch_later(path: Path, text: str) -> None:
    """Rewrite ``path`` and move its mtime forward, so even a coarse clock sees a change."""
    before = path.stat().st_mtime_ns
    path.write_text(text, encoding="utf-8")
    os.utime(path, ns=(before + 2_000_000_000, before + 2_000_000_000))


def test_get_and_render(directory: Path) -> None:
    loader = TemplateLoader(directory)
    assert loader.render("page.html", X="<1>") == "<p>&lt;1&gt;</p>"
    assert loader.render("sub/inner.html", {"R": [{"V": 1}, {"V": 2}]}) == "12"
    template = loader.get("page.html")
    assert isinstance(template, Template)
    assert template.name == os.path.join(str(directory), "page.html")
    assert repr(loader) == f"<TemplateLoader {str(directory)!r}>"


def test_each_get_is_a_fresh_template_sharing_the_program(directory: Path) -> None:
    loader = TemplateLoader(directory)
    first, second = loader.get("page.html"), loader.get("page.html")
    assert first is not second
    assert first._program is second._program
    first.set_variable("X", "mine")
    assert second.get_html() == "<p></p>"


def test_recompiled_when_the_file_changes(directory: Path) -> None:
    loader = TemplateLoader(directory)
    program = loader.get("page.html")._program
    assert loader.get("page.html")._program is program
    touch_later(directory / "page.html", "<div>${X}</div>")
    assert loader.render("page.html", X=1) == "<div>1</div>"
    assert loader.get("page.html")._program is not program


def test_without_auto_reload_the_first_version_stays(directory: Path) -> None:
    loader = TemplateLoader(directory, auto_reload=False)
    assert loader.render("page.html", X=1) == "<p>1</p>"
    touch_later(directory / "page.html", "changed")
    assert loader.render("page.html", X=1) == "<p>1</p>"
    loader.clear()
    assert loader.render("page.html", X=1) == "changed"


def test_missing_file(directory: Path) -> None:
    with pytest.raises(TemplateFileError) as info:
        TemplateLoader(directory).get("nope.html")
    assert info.value.template == os.path.join(str(directory), "nope.html")
    assert "cannot read template" in info.value.message


def test_a_file_removed_after_loading_is_an_error(directory: Path) -> None:
    loader = TemplateLoader(directory)
    loader.get("page.html")
    (directory / "page.html").unlink()
    with pytest.raises(TemplateFileError):
        loader.get("page.html")


def test_directory_is_not_a_template(directory: Path) -> None:
    with pytest.raises(TemplateFileError):
        TemplateLoader(directory).get("sub")


def test_syntax_error_names_file_and_line(directory: Path) -> None:
    (directory / "bad.html").write_text("ok\n${_BEGIN_A}\n${_END_B}\n", encoding="utf-8")
    with pytest.raises(TemplateSyntaxError) as info:
        TemplateLoader(directory).get("bad.html")
    assert info.value.template == os.path.join(str(directory), "bad.html")
    assert info.value.line == 3


def test_undecodable_file_names_the_line(directory: Path) -> None:
    (directory / "latin1.html").write_bytes(b"one\ntwo\ncaf\xe9\n")
    with pytest.raises(TemplateFileError) as info:
        TemplateLoader(directory).get("latin1.html")
    assert info.value.line == 3
    assert "not valid utf-8" in info.value.message
    assert (
        TemplateLoader(directory, encoding="latin-1").render("latin1.html") == "one\ntwo\ncafé\n"
    )


@pytest.mark.parametrize("name", ["../outside.html", "sub/../../outside.html", "", "a\x00b"])
def test_names_outside_the_directory_are_refused(directory: Path, name: str) -> None:
    (directory.parent / "outside.html").write_text("secret", encoding="utf-8")
    with pytest.raises(TemplateFileError):
        TemplateLoader(directory / "sub").get(name)


def test_absolute_names_are_refused(directory: Path) -> None:
    with pytest.raises(TemplateFileError, match="not a relative template name"):
        TemplateLoader(directory).get(str(directory / "page.html"))


def test_symlink_pointing_outside_is_refused(
    directory: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    elsewhere = tmp_path_factory.mktemp("elsewhere") / "secret.html"
    elsewhere.write_text("secret", encoding="utf-8")
    (directory / "link.html").symlink_to(elsewhere)
    with pytest.raises(TemplateFileError, match="outside the template directory"):
        TemplateLoader(directory).get("link.html")


def test_symlink_inside_is_fine(directory: Path) -> None:
    (directory / "alias.html").symlink_to(directory / "page.html")
    assert TemplateLoader(directory).render("alias.html", X=2) == "<p>2</p>"


def test_warnings_flag_is_passed_to_every_template(directory: Path) -> None:
    loader = TemplateLoader(directory, warn_on_not_used_vars=True)
    with pytest.warns(TemplateWarning) as caught:
        loader.render("page.html", Y=1)
    assert all(warning.filename == __file__ for warning in caught.list)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TemplateLoader(directory).render("page.html", Y=1)


def test_autoescape_setting(directory: Path) -> None:
    assert TemplateLoader(directory, autoescape=False).render("page.html", X="<b>") == "<p><b></p>"


def test_concurrent_first_use_compiles_once(
    directory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    compiled: list[str] = []
    real_compile = _compiler.compile_tree

    def counting(*args: object, **kwargs: object) -> object:
        compiled.append("x")
        return real_compile(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(_loader, "compile_tree", counting)
    loader = TemplateLoader(directory)
    barrier = threading.Barrier(8)
    results: list[str] = []

    def work() -> None:
        barrier.wait()
        for number in range(50):
            results.append(loader.render("page.html", X=number))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(compiled) == 1
    assert len(results) == 400
    assert all(result.startswith("<p>") for result in results)


def test_retargeted_symlink_never_reaches_outside(
    directory: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    elsewhere = tmp_path_factory.mktemp("elsewhere") / "secret.html"
    elsewhere.write_text("secret", encoding="utf-8")
    link = directory / "link.html"
    link.symlink_to(directory / "page.html")
    loader = TemplateLoader(directory)
    assert loader.render("link.html", X=1) == "<p>1</p>"
    link.unlink()
    link.symlink_to(elsewhere)
    assert loader.render("link.html", X=1) == "<p>1</p>"  # still the checked file
    touch_later(directory / "page.html", "changed ${X}")
    with pytest.raises(TemplateFileError, match="outside the template directory"):
        loader.get("link.html")  # the name is resolved and checked again
