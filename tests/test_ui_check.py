"""`make ui-check`: the machinery around the browser (the full check runs nightly)."""

import subprocess
import sys
import time

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
