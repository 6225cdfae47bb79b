"""Check the reviewer's pages as a person sees them: the two UIs in a real Chromium.

Starts the MLflow UI and the Dagster webserver on the embedded stores of a Plimsoll home
(after `make demo`), opens the candidate's version page in MLflow and the eval_report and
candidate_model asset pages in Dagster, checks that the verdict, the comparison table, the
model card, the plot and the links are visible, and saves a screenshot of each page.

Debian's chromium is used (`make ui-tools` installs it); Playwright never downloads a
browser here. Exit 0: every check passed; 1: a check failed; 2: nothing to check or the
tools or servers could not start.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from plimsoll.common.boundary import debug_requested, run_guarded  # noqa: E402 (after the path is set)
from plimsoll.common.errors import PlimsollError  # noqa: E402

MODEL = "plimsoll-docs-assistant"
ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "DVC_NO_ANALYTICS": "1",
       "GX_ANALYTICS_ENABLED": "false", "TOKENIZERS_PARALLELISM": "false",
       "DAGSTER_DISABLE_TELEMETRY": "1", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
       # The UI needs no job runner: without this `mlflow ui` starts seven huey consumers.
       "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


@dataclass(frozen=True)
class Check:
    """One thing a person must see on a page."""

    page: str  # mlflow-version | dagster-eval-report | dagster-candidate-model
    description: str
    kind: str  # text | pattern (a regular expression) | image | link | follow
    value: str
    # follow: the link's text (a regular expression), what its page must show, and the
    # name of that page's screenshot (none when empty).
    shows: str = ""
    screenshot: str = ""


CHECKS = (
    Check("mlflow-version", "the verdict line", "text", "Verdict:"),
    Check("mlflow-version", "the comparison table", "text",
          "Candidate against the champion, the base encoder and BM25"),
    Check("mlflow-version", "the BM25 column", "text", "BM25"),
    Check("mlflow-version", "the model card section", "text", "Model card"),
    Check("mlflow-version", "the model card's intended use", "text", "Intended use."),
    Check("mlflow-version", "how to decide (or who decided)", "pattern",
          r"add approval\.by = your name|Verdict: (promoted|rejected|approved)"),
    Check("mlflow-version", "the served answer prompt, one click away (its text and diff)",
          "follow", r"^prompts:/plimsoll-answer/\d+$", shows="Commit message",
          screenshot="mlflow-prompt"),
    Check("mlflow-version", "the training run, one click away", "follow", r"^training run$",
          shows="finetune-"),
    Check("dagster-eval-report", "the eval plot as a picture", "image", "eval plot"),
    Check("dagster-eval-report", "a link to the MLflow run", "link", "#/experiments/"),
    Check("dagster-candidate-model", "a link to the MLflow version page", "link",
          "#/models/"),
)

# --walk: the version page after each step of review and approval.
WALK_CHECKS = (
    Check("mlflow-gated", "the gate's verdict", "text", "Verdict: gate"),
    Check("mlflow-tags", "the reviewer's tag in the Tags table", "text", "approval.by"),
    Check("mlflow-promoted", "the verdict after approval", "text", "Verdict: promoted"),
)


class UiCheckError(PlimsollError):
    """The check could not run (exit 2); the message says why and what to do."""


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class Server:
    """A server to run for the check: its command, and the URL that answers once it is up."""

    name: str
    command: list[str]
    health: str
    log: Path


@contextlib.contextmanager
def servers(wanted: list[Server], timeout_s: float, env: dict[str, str]) -> Iterator[None]:
    """Run servers until the block ends, started together so that they load in parallel.

    One that exits or never answers is a clear error; every one is stopped either way.
    """
    processes = []
    try:
        for spec in wanted:
            spec.log.parent.mkdir(parents=True, exist_ok=True)
            with spec.log.open("wb") as out:
                processes.append(subprocess.Popen(
                    spec.command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO,
                    start_new_session=True))
        for spec, process in zip(wanted, processes, strict=True):
            wait_until_up(spec.name, process, spec.health, spec.log, timeout_s)
        yield
    finally:
        for process in processes:
            stop(process)


def server(name: str, command: list[str], health: str, log: Path, timeout_s: float,
           env: dict[str, str]):
    """One server (see `servers`)."""
    return servers([Server(name, command, health, log)], timeout_s, env)


def wait_until_up(name: str, process: subprocess.Popen, health: str, log: Path,
                  timeout_s: float) -> None:
    """Poll `health` until it answers 200; a server that exits or stays silent is an error."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise UiCheckError(f"{name} exited with code {process.returncode} before it "
                               f"answered; the end of its log ({log}):\n{tail(log)}")
        try:
            with urllib.request.urlopen(health, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise UiCheckError(f"{name} did not answer {health} within {timeout_s:.0f} s (--timeout); "
                       f"the end of its log ({log}):\n{tail(log)}")


def stop(process: subprocess.Popen) -> None:
    """Terminate the server's whole process group; kill what is left after 10 s."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, 15)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, 9)
        process.wait(timeout=10)


def tail(log: Path, lines: int = 30) -> str:
    """The last lines of a log file."""
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def latest_version(tracking_uri: str, model: str) -> str | None:
    """The newest registered version of a model in a SQLite store, without creating one."""
    import sqlite3

    database = Path(tracking_uri.removeprefix("sqlite:///"))
    if not database.is_file():
        return None
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        try:
            row = db.execute("SELECT max(version) FROM model_versions WHERE name = ? AND "
                             "current_stage != 'Deleted_Internal'", (model,)).fetchone()
        except sqlite3.DatabaseError:
            return None
    return str(row[0]) if row and row[0] is not None else None


def run_checks(page, checks: list[Check], timeout_ms: int,
               shots: Path | None = None) -> list[dict]:
    """Each check on an open page: PASS or FAIL, with what was looked for."""
    results = []
    for check in checks:
        ok = False
        try:
            if check.kind in ("text", "pattern"):
                wanted = re.compile(check.value) if check.kind == "pattern" else check.value
                page.get_by_text(wanted).first.wait_for(state="visible", timeout=timeout_ms)
                ok = True
            elif check.kind == "image":
                image = page.locator(f'img[alt="{check.value}"]').first
                image.wait_for(state="visible", timeout=timeout_ms)
                ok = image.evaluate("img => img.complete && img.naturalWidth > 0")
            elif check.kind == "link":
                link = page.locator(f'a[href*="{check.value}"]').first
                link.wait_for(state="attached", timeout=timeout_ms)
                ok = (link.get_attribute("href") or "").startswith("http")
            elif check.kind == "follow":
                ok = follows(page, check, timeout_ms, shots)
        except Exception:
            ok = False
        print(f"{'PASS' if ok else 'FAIL'}  {check.page}: {check.description}")
        results.append({**asdict(check), "passed": bool(ok)})
    return results


def follows(page, check: Check, timeout_ms: int, shots: Path | None = None) -> bool:
    """The link named by the check leads to a page that shows `check.shows`.

    MLflow opens a description's links in a new tab; the target is opened the same way,
    from the link's own href resolved as the browser resolves it.
    """
    # Playwright writes the pattern as /source/: a bare slash in it would end it early.
    name = re.compile(check.value.replace("/", r"\/"))
    link = page.get_by_role("link", name=name).first
    link.wait_for(state="visible", timeout=timeout_ms)
    target = link.evaluate("a => new URL(a.getAttribute('href'), document.baseURI).href")
    opened = page.context.new_page()
    try:
        opened.goto(target, wait_until="domcontentloaded", timeout=timeout_ms)
        opened.get_by_text(check.shows).first.wait_for(state="visible", timeout=timeout_ms)
        if shots is not None and check.screenshot:
            close_assistant(opened)
            opened.screenshot(path=str(shots / f"{check.screenshot}.png"))
        return True
    finally:
        opened.close()


def open_page(page, name: str, url: str, ready: str, timeout_ms: int = 60_000) -> bool:
    """Go to a page and wait until `ready` is visible; False (and say so) when it never is."""
    try:
        page.goto(url, wait_until="domcontentloaded", timeout=timeout_ms)
        page.get_by_text(ready).first.wait_for(state="visible", timeout=timeout_ms)
    except Exception as exc:  # Playwright's TimeoutError or a navigation error
        print(f"FAIL  {name}: {url} did not show {ready!r} within {timeout_ms // 1000} s "
              f"({type(exc).__name__})")
        return False
    if name.startswith("mlflow"):
        close_assistant(page)
    else:
        dismiss_dagster_welcome(page)
    if name == "dagster-eval-report":
        open_markdown_dialogs(page)
    return True


def close_assistant(page) -> None:
    """MLflow 3 opens its assistant beside the page; close it, as a reviewer would."""
    with contextlib.suppress(Exception):
        page.locator('[data-component-id="mlflow.assistant.chat_panel.close"]').first.click(
            timeout=3000)


def set_tag(page, name: str, value: str, timeout_ms: int = 20_000) -> None:
    """Set a tag in the version page's Tags table as a reviewer does.

    A row that exists is edited (✎, value, Save); a new one is added (Name, Value, Add).
    """
    row = page.locator(f'tr[data-row-key="{name}"]')
    if row.count():
        row.get_by_test_id("editable-table-button-edit").click()
        row.get_by_test_id("editable-table-edited-input").fill(value)
        row.get_by_test_id("editable-table-button-save").click()
    else:
        page.get_by_label("tag name").fill(name)
        page.get_by_label("tag value").fill(value)
        page.get_by_test_id("add-tag-button").click()
    row.filter(has_text=value).wait_for(state="visible", timeout=timeout_ms)
    row.get_by_test_id("editable-table-button-edit").wait_for(state="visible",
                                                              timeout=timeout_ms)


def dismiss_dagster_welcome(page) -> None:
    """A fresh Dagster UI asks to join its community first: Skip, as a person would."""
    with contextlib.suppress(Exception):
        page.get_by_role("button", name="Skip", exact=True).click(timeout=3000)


def open_markdown_dialogs(page) -> None:
    """Dagster shows Markdown metadata behind a button: open the one with the plot."""
    buttons = page.get_by_text("[Show Markdown]", exact=True)
    for index in range(buttons.count()):
        with contextlib.suppress(Exception):
            buttons.nth(index).click(timeout=3000)
            page.locator('img[alt="eval plot"]').first.wait_for(state="visible",
                                                                timeout=3000)
            page.wait_for_timeout(800)  # the dialog fades in: screenshot it once opaque
            return
        page.keyboard.press("Escape")


def stop_on_signals() -> None:
    """SIGTERM and SIGHUP unwind like Ctrl-C, so the servers and the browser are stopped.

    The servers run in sessions of their own (a Ctrl-C at the terminal must not reach them
    before the check has stopped them), so nothing else would stop them.
    """
    def unwind(signum, _frame):
        # Once: make forwards the signal it got, and a second one would cut the clean-up.
        for other in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(other, signal.SIG_IGN)
        raise SystemExit(128 + signum)

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, unwind)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, start the UIs, check the pages; the exit code says how it went."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="Exit codes: 0 all checks passed, 1 a check "
                                     "failed, 2 nothing to check or a tool/server failed, "
                                     "3 an unexpected error (PLIMSOLL_DEBUG=1 prints its "
                                     "traceback).")
    parser.add_argument("--home", default=os.environ.get("PLIMSOLL_HOME",
                                                         str(REPO / ".plimsoll")),
                        help="the Plimsoll home `make demo` filled (default $PLIMSOLL_HOME "
                        "or .plimsoll)")
    parser.add_argument("--model", default=MODEL, help="registered model name")
    parser.add_argument("--version", help="model version to open (default: the newest)")
    parser.add_argument("--chromium", default="/usr/bin/chromium",
                        help="the Chromium binary (Debian's; `make ui-tools`)")
    parser.add_argument("--screenshots", help="folder for the screenshots (default "
                        "<home>/ui-check)")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds each server may take to answer (default 120)")
    parser.add_argument("--json", help="write the results to this file")
    parser.add_argument("--walk", action="store_true",
                        help="then walk review and approval: gate the version, add the "
                        "approval tags in the MLflow UI, run one approval tick, and "
                        "screenshot each step (this moves champion in the home)")
    parser.add_argument("--reviewer", default="Ada Reviewer",
                        help="who approves in --walk (not the trainer; default %(default)s)")
    args = parser.parse_args(argv)
    # The project's command boundary: a PlimsollError (a UiCheckError, or the registry's
    # during --walk) is one message and exit 2, never a traceback.
    return run_guarded("ui-check", lambda: check_pages(args), debug=debug_requested(argv))

class Visits:
    """The pages opened so far: their check results and screenshots."""

    def __init__(self, context, shots: Path, timeout_ms: int = 60_000) -> None:
        self.context, self.shots, self.timeout_ms = context, shots, timeout_ms
        self.results: list[dict] = []
        self.screenshots: dict[str, str] = {}

    def visit(self, name: str, url: str, ready: str, checks=CHECKS):
        """Open `url`, wait for `ready`, run the page's checks, save its screenshot."""
        page = self.context.new_page()
        mine = [c for c in checks if c.page == name]
        if open_page(page, name, url, ready, self.timeout_ms):
            self.check(page, mine)
        else:
            self.results += [{**asdict(c), "passed": False,
                              "error": f"the page never showed {ready!r}"} for c in mine]
        self.screenshot(page, name)
        return page

    def check(self, page, checks) -> bool:
        """Run checks on an open page; True when all passed."""
        results = run_checks(page, list(checks), timeout_ms=min(20_000, self.timeout_ms),
                             shots=self.shots)
        self.results += results
        return all(r["passed"] for r in results)

    def fail(self, check: Check, error: str) -> None:
        """Record a check that could not be made, and why."""
        print(f"FAIL  {check.page}: {check.description} ({error})")
        self.results.append({**asdict(check), "passed": False, "error": error})

    def screenshot(self, page, name: str, *, full_page: bool = True) -> None:
        """Save the page (or what the window shows) as <shots>/<name>.png."""
        path = str(self.shots / f"{name}.png")
        try:
            page.screenshot(path=path, full_page=full_page)
        except Exception as exc:  # a page that crashed: the checks already say so
            print(f"no screenshot of {name}: {type(exc).__name__}")
            return
        self.screenshots[name] = path
        print(f"screenshot: {path}")


def walk(visits: Visits, url: str, model: str, version: str, reviewer: str,
         env: dict[str, str]) -> None:
    """Review and approval as the README walks it, with a screenshot after each step.

    The gate and the approval tick are what promotion_gate_sensor and approval_sensor run
    (the same Promoter, built from the same resources); the approval itself is typed into
    the MLflow UI's Tags table, as a reviewer does.
    """
    os.environ.update(env)
    from platform_defs.profiles import resources_for

    resources = resources_for("local")
    promoter = resources["promotion"].promoter(resources["mlflow"])
    verdict, _ = promoter.gate(version)
    print(f"gate: {model} v{version} {'PASS' if verdict.passed else 'FAIL'}")
    page = visits.visit("mlflow-gated", url, "Verdict: gate", WALK_CHECKS)
    tags_check, promoted_check = WALK_CHECKS[1], WALK_CHECKS[2]
    if not verdict.passed:
        for check in (tags_check, promoted_check):
            visits.fail(check, "the gate failed: there is nothing to approve")
        return
    try:
        set_tag(page, "approval.by", reviewer)
        set_tag(page, "approval", "approved")
    except Exception as exc:  # Playwright's errors: the form was not where a person finds it
        visits.fail(tags_check, f"could not add the tags in the UI ({type(exc).__name__})")
    else:
        visits.check(page, [tags_check])
        with contextlib.suppress(Exception):
            page.locator('tr[data-row-key="approval.by"]').scroll_into_view_if_needed()
        visits.screenshot(page, "mlflow-tags", full_page=False)
    for outcome in promoter.process_approvals():
        print(f"approval: {model} v{outcome.version} {outcome.action} ({outcome.reason})")
    visits.visit("mlflow-promoted", url, "Verdict:", WALK_CHECKS)


def playwright_api():
    """Playwright's sync entry point; its absence says how to install it."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise UiCheckError("Python Playwright is not installed in this environment: run "
                           "`make install` (it is in the dev extra)") from None
    return sync_playwright


def launch(playwright, chromium: str):
    """Debian's Chromium, headless; a binary that will not start is a clear error."""
    try:
        return playwright.chromium.launch(executable_path=chromium, headless=True)
    except Exception as exc:  # Playwright raises its own Error with the browser's output
        first = str(exc).strip().splitlines()[:6]
        raise UiCheckError(f"Chromium at {chromium} did not start: " + "\n".join(first) +
                           "\nReinstall it with `make ui-tools`, or pass --chromium PATH")\
            from None


def check_pages(args: argparse.Namespace) -> int:
    """What main does once the arguments are read."""
    started = time.monotonic()
    sync_playwright = playwright_api()
    home = Path(args.home).resolve()
    if not Path(args.chromium).is_file():
        raise UiCheckError(f"no Chromium at {args.chromium}: install it with `make ui-tools` "
                           "(Debian's chromium package), or pass --chromium PATH")
    tracking_uri = f"sqlite:///{home / 'mlflow' / 'mlflow.db'}"
    version = args.version or latest_version(tracking_uri, args.model)
    if version is None:
        raise UiCheckError(f"no version of {args.model} is registered in {tracking_uri}: run "
                           "`make demo` first (or pass --home)")
    shots = Path(args.screenshots or home / "ui-check")
    shots.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **ENV, "PLIMSOLL_HOME": str(home),
           "DAGSTER_HOME": os.environ.get("DAGSTER_HOME", str(home / "dagster"))}
    mlflow_port, dagster_port = free_port(), free_port()
    mlflow_url, dagster_url = (f"http://127.0.0.1:{mlflow_port}",
                               f"http://127.0.0.1:{dagster_port}")
    env["PLIMSOLL_MLFLOW_UI_URL"] = mlflow_url
    binaries = Path(sys.executable).parent
    mlflow = [str(binaries / "mlflow"), "ui", "--backend-store-uri", tracking_uri,
              "--default-artifact-root", str(home / "mlflow" / "artifacts"),
              "--host", "127.0.0.1", "--port", str(mlflow_port), "--workers", "1"]
    dagster = [str(binaries / "dagster-webserver"), "-w", str(REPO / "workspace.yaml"),
               "-h", "127.0.0.1", "-p", str(dagster_port)]
    pages = {"mlflow-version": f"{mlflow_url}/#/models/{args.model}/versions/{version}",
             "dagster-eval-report": f"{dagster_url}/assets/eval_report?view=events",
             "dagster-candidate-model": f"{dagster_url}/assets/candidate_model?view=events"}
    # What each page shows once its data has loaded (both UIs poll, so the network is
    # never idle: wait for the content instead).
    ready = {"mlflow-version": "Verdict:", "dagster-eval-report": "Materialized",
             "dagster-candidate-model": "Materialized"}
    # The browser first: it fails fast, before two servers are started for nothing.
    with sync_playwright() as playwright:
        browser = launch(playwright, args.chromium)
        try:
            with servers([Server("the MLflow UI", mlflow, f"{mlflow_url}/health",
                                 shots / "mlflow.log"),
                          Server("the Dagster webserver", dagster, f"{dagster_url}/server_info",
                                 shots / "dagster.log")], args.timeout, env):
                visits = Visits(browser.new_context(viewport={"width": 1400, "height": 1800}),
                                shots)
                for name, url in pages.items():
                    visits.visit(name, url, ready[name], CHECKS)
                if args.walk:
                    walk(visits, pages["mlflow-version"], args.model, version, args.reviewer,
                         env)
        finally:
            browser.close()
    results, screenshots = visits.results, visits.screenshots
    failed = [r for r in results if not r["passed"]]
    summary = {"version": version, "checks": results, "screenshots": screenshots,
               "pages": pages, "seconds": round(time.monotonic() - started, 1)}
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))
    print(f"ui-check: {len(results) - len(failed)} of {len(results)} checks passed on "
          f"{args.model} v{version} in {summary['seconds']} s")
    return 1 if failed else 0


if __name__ == "__main__":
    stop_on_signals()
    sys.exit(main())
