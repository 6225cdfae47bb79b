import json
import subprocess
import sys

import pytest
from conftest import REPO_ROOT

from plimsoll.serving.promptlint import lint_file

GOOD = "---\nid: t\nversion: 1.0.0\nowner: team@plimsoll\nvariables: [answer]\n---\n{{ answer }}\n"


def _lint(tmp_path, text: str, name="t.md"):
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return lint_file(path)


def test_repository_prompts_are_clean():
    done = subprocess.run([sys.executable, "tools/promptlint.py", "prompts/"], cwd=REPO_ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout
    assert "template(s), clean" in done.stdout


def test_clean_template(tmp_path):
    assert _lint(tmp_path, GOOD) == []


@pytest.mark.parametrize(("text", "rule", "line"), [
    (GOOD.replace("{{ answer }}", "{{ answer }} {{ secret_sauce }}"), "PL002", 7),
    (GOOD.replace("[answer]", "[answer, extra]"), "PL003", 2),
    (GOOD.replace("{{ answer }}", "{{ answer }}   "), "PL004", 7),
    (GOOD.replace("{{ answer }}", "\t{{ answer }}"), "PL005", 7),
    (GOOD.replace("\n", "\r\n"), "PL006", 1),
    (GOOD.replace("{{ answer }}", "{{ answer }}\u200b"), "PL007", 7),
    (GOOD.replace("{{ answer }}", "{{ answer }} \U000e0041"), "PL007", 7),
    (GOOD.replace("{{ answer }}", "{{ answer }} pаypal"), "PL008", 7),  # Cyrillic а
    (GOOD.replace("{{ answer }}", "{{ answer }} " + "x" * 120), "PL009", 7),
    (GOOD.replace("{{ answer }}", "{{ answer }} key AKIAIOSFODNN7EXAMPLE"), "PL010", 7),
    (GOOD.replace("{{ answer }}", "{{ answer }} mail jane.doe@example.com"), "PL011", 7),
    (GOOD.replace("{{ answer }}", "{{ answer }} card 4111 1111 1111 1111"), "PL011", 7),
    (GOOD.replace("{{ answer }}", "{{ answer.x | int(base=99, oops=1) }}"), "PL012", 7),
    (GOOD.replace("version: 1.0.0", "version: one"), "PL001", 2),
    (GOOD.replace("owner: team@plimsoll\n", ""), "PL001", 2),
    ("no front matter\n", "PL001", 1),
])
def test_each_rule_reports_its_id_and_line(tmp_path, text, rule, line):
    findings = _lint(tmp_path, text)
    matching = [f for f in findings if f.rule == rule]
    assert matching, findings
    assert matching[0].line == line
    assert str(matching[0]).startswith(f"{tmp_path / 't.md'}:{line}: {rule} ")


def test_cli_exits_non_zero_and_writes_json(tmp_path):
    bad = tmp_path / "bad.md"
    bad.write_text(GOOD.replace("{{ answer }}", "{{ answer }}\u200b {{ undeclared }}"))
    report = tmp_path / "lint.json"
    done = subprocess.run([sys.executable, str(REPO_ROOT / "tools" / "promptlint.py"),
                           str(bad), "--json", str(report)], capture_output=True, text=True)
    assert done.returncode == 1
    assert f"{bad}:7: PL002 variable 'undeclared' is used but not declared" in done.stdout
    assert f"{bad}:7: PL007 invisible character U+200B" in done.stdout
    assert {f["rule"] for f in json.loads(report.read_text())["findings"]} == {"PL002", "PL007"}


def test_cli_on_a_missing_path(tmp_path):
    done = subprocess.run([sys.executable, str(REPO_ROOT / "tools" / "promptlint.py"),
                           str(tmp_path / "nope")], capture_output=True, text=True)
    assert done.returncode == 2 and "no such file or folder" in done.stderr


def test_card_numbers_must_pass_luhn(tmp_path):
    template = tmp_path / "t.md"
    template.write_text(GOOD.replace("{{ answer }}", "{{ answer }} card 4111 1111 1111 1112"))
    assert not [f for f in lint_file(template) if f.rule == "PL011"]
    template.write_text(GOOD.replace("{{ answer }}", "{{ answer }} card 4111 1111 1111 1111"))
    assert [f.message for f in lint_file(template) if f.rule == "PL011"] == [
        "card number (passes Luhn)"]


@pytest.mark.parametrize(("content", "message"), [
    (b"\xff\xfe-\x00-\x00", "UTF-16"),
    (b"---\nid: a\xe9\n---\nbody", "not valid UTF-8"),
    (b"---\nid: [\n---\nbody", "not valid YAML"),
    (b"---\n- a\n---\nbody", "must be a YAML mapping"),
    (b"---\nid: a\nversion: 1\nowner: o\nvariables: question\n---\nbody", "list of names"),
])
def test_a_malformed_template_is_a_clear_error(tmp_path, content, message):
    from plimsoll.common.errors import PlimsollError
    from plimsoll.serving.prompts import load_template

    path = tmp_path / "answer.md"
    path.write_bytes(content)
    with pytest.raises(PlimsollError, match=message) as caught:
        load_template(path)
    assert caught.value.file == str(path)
