"""Prompt templates: rendered strictly, and compiled once rather than on every answer."""

import jinja2
import pytest

from plimsoll.common.errors import PlimsollError
from plimsoll.serving.prompts import load_template


def _template(tmp_path, body, name="t"):
    path = tmp_path / f"{name}.md"
    path.write_text(f"---\nid: {name}\nversion: '1'\nowner: ml\nvariables: [answer]\n---\n{body}")
    return load_template(path)


@pytest.fixture
def compiles(monkeypatch):
    """The template sources Jinja compiles, in order."""
    sources = []
    original = jinja2.Environment.compile

    def counting(environment, source, *args, **kwargs):
        sources.append(source)
        return original(environment, source, *args, **kwargs)

    monkeypatch.setattr(jinja2.Environment, "compile", counting)
    return sources


def test_rendering_twice_compiles_once(tmp_path, compiles):
    template = _template(tmp_path, "Answer: {{ answer }} (compile-once test)\n")
    assert template.render(answer="first") == "Answer: first (compile-once test)"
    assert template.render(answer="second") == "Answer: second (compile-once test)"
    again = load_template(template.path)  # the same file loaded again, as a bundle reload does
    assert again.render(answer="third") == "Answer: third (compile-once test)"
    assert len(compiles) == 1


def test_templates_with_different_bodies_do_not_share_a_compilation(tmp_path, compiles):
    one = _template(tmp_path, "One: {{ answer }} (distinct bodies)", name="one")
    two = _template(tmp_path, "Two: {{ answer }} (distinct bodies)", name="two")
    assert one.render(answer="x") == "One: x (distinct bodies)"
    assert two.render(answer="x") == "Two: x (distinct bodies)"
    assert len(compiles) == 2


def test_rendering_stays_strict_and_unescaped(tmp_path):
    template = _template(tmp_path, "{{ answer }} {{ answer.missing }}")
    with pytest.raises(jinja2.UndefinedError):
        template.render(answer="x")
    plain = _template(tmp_path, "<b>{{ answer }}</b>\n\n", name="plain")
    assert plain.render(answer="a & b") == "<b>a & b</b>"
    with pytest.raises(PlimsollError) as caught:
        plain.render()
    assert caught.value.field == "variables"
