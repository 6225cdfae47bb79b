"""`make ui-check`: the machinery around the browser (the full check runs nightly)."""

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "tools"))
import ui_check


def test_a_missing_chromium_names_the_make_target(tmp_path, capsys):
    code = ui_check.main(["--home", str(tmp_path), "--chromium", str(tmp_path / "nope")])
    assert code == 2
    assert "install it with `make ui-tools`" in capsys.readouterr().err


def test_an_empty_home_says_to_run_the_demo_and_starts_no_server(tmp_path, capsys):
    chromium = tmp_path / "chromium"
    chromium.write_text("")
    (tmp_path / "mlflow").mkdir()
    code = ui_check.main(["--home", str(tmp_path), "--chromium", str(chromium)])
    assert code == 2
    assert "run `make demo` first" in capsys.readouterr().err
    assert not (tmp_path / "ui-check").exists()  # nothing was started


def registered_home(tmp_path):
    """A home whose MLflow store names one version (enough to get past the first checks)."""
    (tmp_path / "mlflow").mkdir()
    with sqlite3.connect(tmp_path / "mlflow" / "mlflow.db") as db:
        db.execute("CREATE TABLE model_versions (name TEXT, version INTEGER, "
                   "current_stage TEXT)")
        db.execute("INSERT INTO model_versions VALUES (?, 3, 'None')", (ui_check.MODEL,))
    return tmp_path


def test_the_newest_live_version_is_the_one_opened(tmp_path):
    home = registered_home(tmp_path)
    with sqlite3.connect(home / "mlflow" / "mlflow.db") as db:
        db.execute("INSERT INTO model_versions VALUES (?, 4, 'Deleted_Internal')",
                   (ui_check.MODEL,))
        db.execute("INSERT INTO model_versions VALUES ('other-model', 9, 'None')")
    assert ui_check.latest_version(f"sqlite:///{home / 'mlflow' / 'mlflow.db'}",
                                   ui_check.MODEL) == "3"


def test_a_chromium_that_will_not_start_is_named_before_any_server_starts(tmp_path, capsys):
    (tmp_path / "home").mkdir()
    home = registered_home(tmp_path / "home")
    chromium = tmp_path / "chromium"
    chromium.write_text("#!/bin/sh\necho 'libnss3.so: cannot open shared object' >&2\n"
                        "exit 127\n")
    chromium.chmod(0o755)
    code = ui_check.main(["--home", str(home), "--chromium", str(chromium)])
    err = capsys.readouterr().err
    assert code == 2
    assert f"Chromium at {chromium} did not start" in err and "make ui-tools" in err
    assert not (home / "ui-check" / "mlflow.log").exists()  # no server was started


def test_a_server_that_exits_at_once_is_named_with_its_log(tmp_path):
    log = tmp_path / "server.log"
    command = [sys.executable, "-c", "import sys; print('port in use'); sys.exit(3)"]
    with pytest.raises(ui_check.UiCheckError) as caught, \
            ui_check.server("the MLflow UI", command, "http://127.0.0.1:9/health", log, 30, {}):
        pass
    assert "the MLflow UI exited with code 3" in str(caught.value)
    assert "port in use" in str(caught.value)


def test_a_server_that_never_answers_times_out_and_is_stopped(tmp_path):
    log = tmp_path / "server.log"
    command = [sys.executable, "-c", "import time; print('starting', flush=True); "
               "time.sleep(60)"]
    started = time.monotonic()
    with pytest.raises(ui_check.UiCheckError) as caught, ui_check.server(
            "the Dagster webserver", command,
            f"http://127.0.0.1:{ui_check.free_port()}/server_info", log, 2, {}):
        pass
    assert time.monotonic() - started < 20
    assert "did not answer" in str(caught.value) and "starting" in str(caught.value)
    leftover = subprocess.run(["pgrep", "-f", "time.sleep(60)"], capture_output=True)
    assert leftover.stdout == b""  # stopped, not orphaned


@pytest.mark.slow
def test_the_reviewers_pages_show_the_card_the_plot_and_the_links(tmp_path):
    home = REPO_ROOT / ".plimsoll"
    if ui_check.latest_version(f"sqlite:///{home / 'mlflow' / 'mlflow.db'}",
                               ui_check.MODEL) is None:
        pytest.skip("no registered version in .plimsoll: run `make demo` first")
    code = ui_check.main(["--home", str(home), "--screenshots", str(tmp_path),
                          "--json", str(tmp_path / "ui.json")])
    assert code == 0
    assert (tmp_path / "mlflow-version.png").stat().st_size > 10_000


@pytest.fixture
def browser():
    if not Path("/usr/bin/chromium").is_file():
        message = "no /usr/bin/chromium: `make ui-tools` installs Debian's chromium"
        if os.environ.get("CI") == "true":
            pytest.fail(message + " (.ci/run runs it)")
        pytest.skip(message)
    with ui_check.playwright_api()() as playwright:
        launched = ui_check.launch(playwright, "/usr/bin/chromium")
        yield launched
        launched.close()


def test_a_page_that_never_shows_its_content_fails_its_checks_and_is_screenshot(
        tmp_path, browser):
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<html><body><p>Internal Server Error</p></body></html>")
    port = ui_check.free_port()
    served = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "-b",
                               "127.0.0.1", "-d", str(site)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        ui_check.wait_until_up("the site", served, f"http://127.0.0.1:{port}/", tmp_path / "l",
                               20)
        visits = ui_check.Visits(browser.new_context(), tmp_path, timeout_ms=1500)
        visits.visit("mlflow-version", f"http://127.0.0.1:{port}/", "Verdict:")
    finally:
        served.terminate()
        served.wait(timeout=10)
    expected = [c for c in ui_check.CHECKS if c.page == "mlflow-version"]
    assert len(visits.results) == len(expected) > 0
    assert not any(result["passed"] for result in visits.results)
    assert all("never showed 'Verdict:'" in result["error"] for result in visits.results)
    assert (tmp_path / "mlflow-version.png").stat().st_size > 1000  # what a person saw


def test_checks_pass_only_on_what_is_visible(browser):
    page = browser.new_context().new_page()  # as the check opens its pages
    page.set_content('<p>Verdict: gate passed</p><p style="display:none">Model card</p>'
                     '<img alt="eval plot" src="data:image/png;base64,AAAA">'
                     '<a href="#/models/m/versions/1">relative</a>'
                     '<a href="data:text/html,<p>Commit message</p>">prompts:/p-answer/2</a>'
                     '<a href="data:text/html,<p>Not found</p>">training run</a>')
    checks = [ui_check.Check("p", "verdict", "text", "Verdict:"),
              ui_check.Check("p", "hidden card", "text", "Model card"),
              ui_check.Check("p", "broken image", "image", "eval plot"),
              ui_check.Check("p", "relative link", "link", "#/models/"),
              ui_check.Check("p", "prompt", "follow", r"^prompts:/p-answer/\d+$",
                             shows="Commit message"),
              ui_check.Check("p", "a link to a page that lacks it", "follow",
                             r"^training run$", shows="finetune-"),
              ui_check.Check("p", "a link that is not there", "follow", r"^nowhere$",
                             shows="x")]
    results = ui_check.run_checks(page, checks, timeout_ms=1000)
    assert [r["passed"] for r in results] == [True, False, False, False, True, False, False]


def test_a_registry_error_during_the_walk_is_a_clear_exit_2(monkeypatch, capsys):
    from plimsoll.common.errors import PlimsollError

    def refused(_args):
        raise PlimsollError("the MLflow store refused the tag", field="approval",
                            fix="check MLFLOW_TRACKING_URI")

    monkeypatch.setattr(ui_check, "check_pages", refused)
    assert ui_check.main(["--walk"]) == 2
    err = capsys.readouterr().err
    assert "field 'approval': the MLflow store refused the tag" in err
    assert "fix: check MLFLOW_TRACKING_URI" in err and "Traceback" not in err


def test_a_check_stopped_by_sigterm_twice_still_stops_its_servers(tmp_path):
    marker = f"ui-check-orphan-{time.time_ns()}"
    script = tmp_path / "run.py"
    script.write_text(
        "import sys, time\n"
        f"sys.path.insert(0, {str(REPO_ROOT / 'tools')!r})\n"
        "import ui_check\n"
        "ui_check.stop_on_signals()\n"
        # A server that takes a second to stop, so the second signal lands mid-clean-up.
        "slow = ('import signal, sys, time; signal.signal(signal.SIGTERM, lambda *a: "
        "(time.sleep(1), sys.exit(0))); time.sleep(120)')\n"
        f"command = [sys.executable, '-c', slow, {marker!r}]\n"
        f"with ui_check.server('the MLflow UI', command, 'http://127.0.0.1:9/health', "
        f"ui_check.Path({str(tmp_path / 'log')!r}), 120, {{}}):\n"
        "    pass\n")
    check = subprocess.Popen([sys.executable, str(script)])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and subprocess.run(
            ["pgrep", "-f", marker], capture_output=True).stdout == b"":
        time.sleep(0.2)
    assert subprocess.run(["pgrep", "-f", marker], capture_output=True).stdout  # started
    check.terminate()  # what .ci/run's trap or a CI timeout sends
    time.sleep(0.3)
    check.terminate()  # and make, which forwards the SIGTERM it got
    assert check.wait(timeout=30) == 128 + 15
    assert subprocess.run(["pgrep", "-f", marker], capture_output=True).stdout == b""
