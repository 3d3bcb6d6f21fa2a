"""The Dagster UI as an analyst uses it: a real webserver on loopback, driven by headless Chromium.

One small world is built in process (history through the nightly chain, a late_delivery champion);
then `factory ui` serves it the way a user starts it, and the tests click through the lineage,
launch the nightly job from the launchpad, launch another night through Dagster's GraphQL client,
and open a drift report from the monitor's metadata. Screenshots go to test-artifacts/ui/
(FACTORY_TEST_ARTIFACTS overrides), so a reviewer sees what the browser saw.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import date, timedelta
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import pytest

from factory_assets.definitions import build_definitions
from factory_assets.raw_material.simulator import SimulationConfig, generate_demo_data
from factory_assets.resources import FactoryStore
from factory_assets.settings import PROJECT_ROOT, FactoryPaths, ensure_dagster_home, record_partitions_start

START, DAYS = date(2025, 1, 6), 42
UI_NIGHT = START + timedelta(days=DAYS - 1)  # the last night: launched from the UI
LAYERS = ("raw_material", "processing", "assembly", "distribution", "feedback")
RANGE = "dagster/asset_partition_range_{}"
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
RUN_TIMEOUT_S = 420


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _chromium() -> str:
    path = os.environ.get("FACTORY_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.fail("Chromium not found: `python3 tasks.py test` installs Debian's chromium package; "
                    "or set FACTORY_CHROMIUM to a Chromium binary.")
    return path


def _wait_for_http(url: str, process: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"`factory ui` exited with {process.returncode} before serving {url}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    raise TimeoutError(f"{url} did not answer within {timeout_s} s")


def _build_world(home: Path) -> None:
    """History through the nightly chain up to the night before UI_NIGHT, and a champion for
    late_delivery trained on it, in this process and on the same instance the UI reads."""
    paths = FactoryPaths(home).create()
    generate_demo_data(SimulationConfig(start_date=START, days=DAYS, order_lines_per_day=120, seed=11), paths.landing)
    defs = build_definitions(FactoryStore(home=str(home)))
    instance = dg.DagsterInstance.from_config(str(ensure_dagster_home(paths)))
    history = defs.resolve_job_def("supply_chain_nightly").execute_in_process(
        instance=instance, run_config=QUIET,
        tags={RANGE.format("start"): START.isoformat(), RANGE.format("end"): (UI_NIGHT - timedelta(days=1)).isoformat()})
    assert history.success
    keys = [dg.AssetKey(["assembly", f"late_delivery{s}"]) for s in ("_training_set", "_model", "_champion")]
    training = defs.resolve_job_def("assembly_training").execute_in_process(
        instance=instance, asset_selection=keys, run_config=QUIET)
    assert training.success
    instance.dispose()


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    """`factory ui` (webserver + daemon + artifact server) on free loopback ports, over a small world."""
    from dagster_graphql import DagsterGraphQLClient
    from playwright.sync_api import sync_playwright

    chromium = _chromium()
    home = tmp_path_factory.mktemp("ui_world")
    port, artifacts_port = _free_port(), _free_port()
    env = dict(os.environ, FACTORY_HOME=str(home), DAGSTER_HOME=str(home / "dagster_home"),
               FACTORY_WAREHOUSE_PATH=str(home / "warehouse.duckdb"),
               FACTORY_ARTIFACTS_URL=f"http://127.0.0.1:{artifacts_port}",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    env["FACTORY_DBT_COLUMN_METADATA"] = "1"  # the column schema and lineage the README points analysts to
    env.pop("FACTORY_PARTITIONS_START", None)
    patch = pytest.MonkeyPatch()
    for key in ("FACTORY_HOME", "DAGSTER_HOME", "FACTORY_WAREHOUSE_PATH", "FACTORY_ARTIFACTS_URL",
                "FACTORY_DBT_COLUMN_METADATA"):
        patch.setenv(key, env[key])
    patch.delenv("FACTORY_PARTITIONS_START", raising=False)
    record_partitions_start(START)  # as `factory data generate` does: the UI's partitions start with the data
    _build_world(home)
    log = open(home / "factory_ui.log", "w")
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "factory"), "ui", "--port", str(port), "--artifacts-port", str(artifacts_port)],
        env=env, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    shots = Path(os.environ.get("FACTORY_TEST_ARTIFACTS", PROJECT_ROOT / "test-artifacts")) / "ui"
    shots.mkdir(parents=True, exist_ok=True)
    try:
        _wait_for_http(f"http://127.0.0.1:{port}/server_info", server, timeout_s=240)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            yield SimpleNamespace(url=f"http://127.0.0.1:{port}", port=port, page=page, shots=shots, home=home,
                                  client=DagsterGraphQLClient("127.0.0.1", port_number=port), log=home / "factory_ui.log")
            browser.close()
        _publish_pictures(shots)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        log.close()
        patch.undo()


#: The README's pictures, retaken by these tests: FACTORY_UPDATE_SCREENSHOTS=1 copies them into docs/.
README_PICTURES = {"lineage.png": "lineage.png", "processing_lineage.png": "lineage-processing.png",
                   "cross_location_lineage.png": "cross-location-lineage.png", "drift_report.png": "drift-report.png",
                   "column_lineage.png": "column-lineage.png", "product_columns.png": "product-columns.png",
                   "portfolio.png": "portfolio.png"}


def _publish_pictures(shots: Path) -> None:
    if os.environ.get("FACTORY_UPDATE_SCREENSHOTS") == "1":
        for shot, picture in README_PICTURES.items():
            if (shots / shot).is_file():
                shutil.copyfile(shots / shot, PROJECT_ROOT / "docs" / picture)


def _wait_for_run(ui, run_id: str) -> dg.DagsterRunStatus:
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        status = ui.client.get_run_status(run_id)
        if status in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED):
            return status
        time.sleep(2)
    raise TimeoutError(f"run {run_id} did not finish within {RUN_TIMEOUT_S} s; see {ui.log}")


def _graphql(ui, query: str) -> dict:
    import json

    request = urllib.request.Request(f"{ui.url}/graphql", data=json.dumps({"query": query}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["data"]


def test_the_lineage_shows_the_five_layers_and_crosses_into_the_business_unit_location(ui):
    locations = _graphql(ui, "{ workspaceOrError { ... on Workspace { locationEntries { name "
                             "locationOrLoadError { __typename } } } } }")["workspaceOrError"]["locationEntries"]
    assert {e["name"]: e["locationOrLoadError"]["__typename"] for e in locations} == {
        "ai_factory": "RepositoryLocation", "customer_care": "RepositoryLocation"}
    page = ui.page
    page.goto(f"{ui.url}/asset-groups", wait_until="networkidle")
    for layer in LAYERS:
        page.get_by_text(layer, exact=True).first.wait_for(timeout=60_000)
    page.wait_for_timeout(1500)  # let the graph settle before the picture
    page.screenshot(path=str(ui.shots / "lineage.png"))
    assert all(layer in page.inner_text("body") for layer in LAYERS)
    # the processing group's graph is wider than the window (nodes outside it are not drawn):
    # its central product is checked through its own upstream lineage
    page.goto(f"{ui.url}/assets/processing/fct_order_lines?view=lineage&lineageScope=upstream",
              wait_until="networkidle")
    page.get_by_text("stg_erp__order_lines").first.wait_for(timeout=60_000)
    page.get_by_text("transactions").first.wait_for(timeout=30_000)
    page.wait_for_timeout(1500)
    page.screenshot(path=str(ui.shots / "processing_lineage.png"))
    # the business unit's training set (location customer_care) reads the core's feature set
    page.goto(f"{ui.url}/assets/assembly/complaint_risk_training_set?view=lineage&lineageScope=upstream",
              wait_until="networkidle")
    page.get_by_text("customer_activity").first.wait_for(timeout=60_000)
    page.wait_for_timeout(1000)
    page.screenshot(path=str(ui.shots / "cross_location_lineage.png"))
    page.goto(f"{ui.url}/assets/assembly/complaint_risk_training_set", wait_until="networkidle")
    page.get_by_text("customer_care", exact=True).first.wait_for(timeout=30_000)  # its code location


def test_launching_the_nightly_job_from_the_launchpad_runs_it_to_success(ui):
    page = ui.page
    page.goto(f"{ui.url}/locations/ai_factory/jobs/supply_chain_nightly/playground", wait_until="networkidle")
    partition = page.get_by_placeholder("Partition")
    partition.click()
    partition.fill(UI_NIGHT.isoformat())
    page.keyboard.press("Enter")
    page.get_by_text(f"partition: {UI_NIGHT.isoformat()}").wait_for(timeout=30_000)
    page.screenshot(path=str(ui.shots / "launchpad.png"))
    page.get_by_role("button", name="Launch Run").click()
    page.wait_for_url(re.compile(r".*/runs/[0-9a-f-]{36}"), timeout=60_000)
    run_id = page.url.rstrip("/").split("/")[-1]
    run_page = page.url
    page.goto("about:blank")  # a live run page re-renders every event: two cores are better spent on the run
    assert _wait_for_run(ui, run_id) == dg.DagsterRunStatus.SUCCESS
    page.goto(run_page, wait_until="networkidle")
    page.get_by_text("Success").first.wait_for(timeout=30_000)
    page.screenshot(path=str(ui.shots / "nightly_run_success.png"))
    instance = dg.DagsterInstance.from_config(str(ui.home / "dagster_home"))
    record = instance.get_latest_materialization_event(dg.AssetKey(["distribution", "late_delivery_predictions"]))
    assert record.run_id == run_id and record.asset_materialization.partition == UI_NIGHT.isoformat()
    instance.dispose()


def test_a_script_launches_a_run_through_the_graphql_client(ui):
    run_id = ui.client.submit_job_execution("policy_review", repository_location_name="ai_factory",
                                            repository_name="__repository__")
    assert _wait_for_run(ui, run_id) == dg.DagsterRunStatus.SUCCESS
    instance = dg.DagsterInstance.from_config(str(ui.home / "dagster_home"))
    record = instance.get_latest_materialization_event(dg.AssetKey(["feedback", "model_compliance"]))
    assert record.run_id == run_id
    assert record.asset_materialization.metadata["non_compliant"].value == 0  # the one champion complies
    instance.dispose()


def test_a_drift_report_opens_from_the_monitors_metadata(ui):
    page = ui.page
    page.goto(f"{ui.url}/assets/feedback/late_delivery_monitoring", wait_until="networkidle")
    link = page.locator("a[href*='data_drift.html']").first
    link.wait_for(timeout=60_000)
    href = link.get_attribute("href")
    assert re.search(rf"/reports/late_delivery/{UI_NIGHT.isoformat()}/data_drift\.html$", href), href
    page.screenshot(path=str(ui.shots / "monitor_asset.png"))
    with page.context.expect_page() as opened:
        link.click()
    report = opened.value
    report.wait_for_load_state("load")
    report.get_by_text("Count of Drifted Columns").first.wait_for(timeout=60_000)
    assert "Drift in column 'net_amount'" in report.content()  # a monitored feature's own section
    title = f"late_delivery: data drift on {UI_NIGHT.isoformat()}"  # what, for which day, against what, which limits
    assert report.title().startswith(title) and report.get_by_text(title).first.is_visible()
    head = report.inner_text("body")
    assert "drift reference" in head and "max_drift_share 0.5" in head and "medium tier" in head
    report.screenshot(path=str(ui.shots / "drift_report.png"))
    report.close()


def _show_markdown(page, label: str) -> str:
    """The markdown value of metadata entry ``label`` on the current page: the UI draws a short one
    in its row and a long one behind *Show Markdown*, in a dialog."""
    first_cell = page.locator("td:first-child", has_text=re.compile(rf"^\s*{re.escape(label)}\s*$"))
    row = page.locator("tr").filter(has=first_cell).first
    try:
        row.wait_for(timeout=60_000)
    except Exception:
        page.screenshot(path=str(Path(os.environ.get("FACTORY_TEST_ARTIFACTS", PROJECT_ROOT / "test-artifacts"))
                                 / "ui" / f"missing_{label}.png"), full_page=True)
        raise
    button = row.get_by_text("Show Markdown")
    if not button.count():
        return row.inner_text()
    button.first.click()
    dialog = page.get_by_role("dialog").first
    dialog.wait_for(timeout=30_000)
    return dialog.inner_text()


def test_a_data_product_shows_its_contract_columns_and_their_lineage(ui):
    """The README: each column's contract description, type and classification on the asset's
    overview, and its column lineage as a table in the latest materialization's metadata."""
    page = ui.page
    page.goto(f"{ui.url}/assets/processing/fct_order_lines", wait_until="networkidle")
    page.get_by_text("Order line key, order_id || '-' || line_number.").first.wait_for(timeout=60_000)
    body = page.inner_text("body")
    assert "Pseudonymised customer" in body and "VARCHAR" in body and "character varying" not in body
    assert "classification: internal" in body and "classification: pseudonymised" in body  # customer_key
    page.screenshot(path=str(ui.shots / "product_columns.png"))
    page.goto(f"{ui.url}/assets/processing/fct_order_lines?view=events", wait_until="networkidle")
    lineage = _show_markdown(page, "column_lineage")
    assert re.search(r"days_late\s.*raw_material/deliveries\.delivered_date.*raw_material/transactions\.promised_date",
                     lineage), lineage
    assert re.search(r"customer_key\s.*raw_material/transactions\.customer_id", lineage), lineage
    page.screenshot(path=str(ui.shots / "column_lineage.png"))
    page.keyboard.press("Escape")


def test_the_portfolio_is_built_every_night(ui):
    page = ui.page
    page.goto(f"{ui.url}/assets/feedback/use_case_portfolio?view=events", wait_until="networkidle")
    table = _show_markdown(page, "portfolio")
    for use_case in ("late_delivery", "demand_forecast", "purchase_propensity", "complaint_risk"):
        assert use_case in table, table
    assert "Never materialized" not in page.inner_text("body")
    page.screenshot(path=str(ui.shots / "portfolio.png"))
    page.keyboard.press("Escape")


def test_the_partitions_start_with_the_data(ui):
    page = ui.page
    page.goto(f"{ui.url}/assets/raw_material/transactions?view=partitions", wait_until="networkidle")
    page.get_by_text(START.isoformat()).first.wait_for(timeout=60_000)
    body = page.inner_text("body")
    assert "2024-01-01" not in body and (START - timedelta(days=1)).isoformat() not in body
    page.screenshot(path=str(ui.shots / "raw_partitions.png"))
