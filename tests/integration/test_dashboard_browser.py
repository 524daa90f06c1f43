"""The web dashboard in a real browser (Debian's Chromium and chromedriver, headless) against
a real server (broker, worker, chDB): sign in, submit 5,000 codes from the page and watch the
bar reach 100 %, cancel a running send, upload a workbook with errors and read the row
table, the admin overview, another sponsor seeing nothing, Turkish at phone width.

Every page is saved as a screenshot under ``artifacts/screenshots`` (``BULKOPS_SCREENSHOT_DIR``)
for CI to keep. Without Chromium the tests skip, except under ``CI=true``, where they fail:
CI installs it (scripts/bootstrap.sh)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select

from api.auth import Role
from bulkops.simulator import SimulatorThread
from tests.integration.conftest import ROOT, Server, provider_env
from tests.integration.test_codegen_flow import submit
from tests.integration.test_link_sends import body
from tests.support import wait_for
from tests.unit.test_workbook import xlsx

SCREENSHOTS = Path(os.environ.get("BULKOPS_SCREENSHOT_DIR", ROOT / "artifacts" / "screenshots"))


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver:
        message = (
            "needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
    ):
        options.add_argument(argument)
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(tmp_path), "download.prompt_for_download": False},
    )
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    session = webdriver.Chrome(service=Service(driver), options=options)
    session.implicitly_wait(0)
    try:
        yield session
    finally:
        # Answers like 404 and 422 are logged by the browser too ("network"): tests ask for
        # them on purpose. Script errors are not.
        errors = [
            e
            for e in session.get_log("browser")
            if e["level"] == "SEVERE" and e.get("source") != "network"
        ]
        session.quit()
        assert not errors, f"the page logged errors: {errors}"


def shot(browser: WebDriver, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


def find(browser: WebDriver, css: str, timeout: float = 20) -> WebElement:
    return wait_for(
        lambda: next(iter(browser.find_elements(By.CSS_SELECTOR, css)), None),
        timeout=timeout,
        interval=0.1,
        message=css,
    )


def text_of(browser: WebDriver, css: str) -> str:
    try:
        return " ".join(e.text for e in browser.find_elements(By.CSS_SELECTOR, css))
    except StaleElementReferenceException:  # redrawn meanwhile
        return ""


def sign_in(browser: WebDriver, server: Server, token: str) -> None:
    browser.get(f"{server.base_url}/")
    find(browser, "#token").send_keys(token)
    find(browser, "form button[type=submit]").click()
    find(browser, "table.operations-table, p.empty")


def operation_id_in_url(browser: WebDriver) -> str | None:
    fragment = browser.current_url.split("#/operations/")
    return fragment[1] if len(fragment) == 2 and fragment[1] else None


def bar_value(browser: WebDriver) -> float:
    try:
        return float(find(browser, "main > .bar").get_attribute("aria-valuenow") or 0)
    except StaleElementReferenceException:
        return -1.0


def test_sign_in_submit_five_thousand_codes_and_watch_them_complete(
    make_server: Any, browser: WebDriver
) -> None:
    server: Server = make_server().start()
    sign_in(browser, server, server.token(7))
    shot(browser, "01-operations-empty")

    find(browser, "a[href='#/new']").click()
    quantity = find(browser, "#codes-quantity")
    quantity.clear()
    quantity.send_keys("5000")
    batch = find(browser, "#codes-batch")
    batch.clear()
    batch.send_keys("250")
    find(browser, "#codes-name").clear()
    find(browser, "#codes-name").send_keys("Kampanya 5000")
    shot(browser, "02-new-operation")
    find(browser, "#codes-form button[type=submit]").click()

    operation_id = wait_for(lambda: operation_id_in_url(browser), timeout=20, message="op page")
    seen: list[float] = []

    def complete() -> bool:
        seen.append(bar_value(browser))
        return seen[-1] == 100 and "Completed" in text_of(browser, ".badge")

    wait_for(complete, timeout=90, interval=0.1, message="bar at 100 % and Completed")
    assert "Kampanya 5000" in find(browser, "h1").text
    assert "5,000" in text_of(browser, ".figures") or "5.000" in text_of(browser, ".figures")
    shot(browser, "03-operation-completed")

    find(browser, "a[href='#/operations']").click()
    link = find(browser, f"a[data-operation='{operation_id}']")
    assert link.text == "Kampanya 5000"
    row_bar = link.find_element(By.XPATH, "ancestor::tr//div[@role='progressbar']")
    assert row_bar.get_attribute("aria-valuenow") == "100"
    Select(find(browser, "#filter-status")).select_by_value("Failed")
    find(browser, "form.filters button[type=submit]").click()
    find(browser, "p.empty")
    shot(browser, "04-operations-filtered")

    find(browser, "a[href='#/statistics']").click()
    wait_for(
        lambda: len(browser.find_elements(By.CSS_SELECTOR, "figure.chart canvas")) == 5,
        timeout=20,
        message="five charts",
    )
    shot(browser, "05-statistics")

    # Turkish, at phone width: labels change, nothing overflows sideways
    browser.set_window_size(390, 844)
    find(browser, "#who button[lang='tr']").click()
    find(browser, "a[href='#/operations']").click()
    wait_for(lambda: "İşlemler" in text_of(browser, "#nav"), timeout=10, message="Turkish")
    find(browser, f"a[data-operation='{operation_id}']")
    overflow = browser.execute_script(
        "return document.documentElement.scrollWidth - window.innerWidth"
    )
    assert overflow <= 1, f"the page scrolls sideways by {overflow}px at phone width"
    shot(browser, "06-operations-phone-tr")


def test_cancel_a_running_send_from_its_page(
    make_server: Any, simulator: SimulatorThread, browser: WebDriver
) -> None:
    server: Server = make_server(**provider_env(simulator, sender_rate_sms=40)).start()
    client = server.client(sponsor_id=7)
    operation_id = submit(client, body(600, batchSize=20), "/send-links")
    sign_in(browser, server, server.token(7))
    browser.get(f"{server.base_url}/dashboard/#/operations/{operation_id}")
    wait_for(lambda: 0 < bar_value(browser) < 100, timeout=60, message="sending")
    find(browser, "button.danger").click()
    find(browser, "dialog[open] #confirm-cancel")
    shot(browser, "07-cancel-dialog")
    find(browser, "dialog[open] #confirm-cancel").click()
    wait_for(lambda: "Cancelled" in text_of(browser, ".badge"), timeout=60, message="Cancelled")
    sent = len(simulator.simulator.entries())
    assert 0 < sent < 600, sent
    assert find(browser, "button.danger").get_attribute("disabled") is not None
    shot(browser, "08-operation-cancelled")


def test_dealer_upload_errors_admin_overview_and_sponsor_isolation(
    make_server: Any, browser: WebDriver, tmp_path: Path
) -> None:
    server: Server = make_server().start()
    client = server.client(sponsor_id=7)
    own = submit(client, {"subscriptionTierId": 1, "quantity": 10, "operationName": "Gizli"})
    workbook = tmp_path / "bayiler.xlsx"
    workbook.write_bytes(
        xlsx(
            [
                ["iyi@example.com", "05321234567", "İyi Bayi", 1, "M"],
                ["not-an-email", "05321234568", "Kötü Bayi", 1, "M"],
                ["eksik@example.com", "", "", 1, "Q"],
            ]
        )
    )
    sign_in(browser, server, server.token(7))
    find(browser, "a[href='#/dealers']").click()
    find(browser, "#dealer-file").send_keys(str(workbook))
    find(browser, "#dealer-form button[type=submit]").click()
    rows = wait_for(
        lambda: browser.find_elements(By.CSS_SELECTOR, "table.row-errors tbody tr"),
        timeout=20,
        message="row errors",
    )
    cells = [[td.text for td in row.find_elements(By.TAG_NAME, "td")] for row in rows]
    assert {row[0] for row in cells} == {"3", "4"}, cells
    assert any(row[1] == "Email" for row in cells)
    shot(browser, "09-dealer-row-errors")
    find(browser, "#dealer-outcome button").click()  # the error report, as a workbook
    report = wait_for(
        lambda: next(iter(tmp_path.glob("dealer-invitation-errors*.xlsx")), None),
        timeout=20,
        message="error report downloaded",
    )
    assert report.stat().st_size > 0

    find(browser, "#who button:last-child").click()  # sign out
    sign_in(browser, server, server.token(8))
    assert not browser.find_elements(By.CSS_SELECTOR, f"a[data-operation='{own}']")
    browser.get(f"{server.base_url}/dashboard/#/operations/{own}")
    wait_for(lambda: own in text_of(browser, "h1"), timeout=10, message="not found")
    assert "Gizli" not in browser.page_source
    assert not browser.find_elements(By.CSS_SELECTOR, "a[href='#/admin']")
    shot(browser, "10-other-sponsor-not-found")

    find(browser, "#who button:last-child").click()
    sign_in(browser, server, server.token(None, Role.ADMIN))
    find(browser, f"a[data-operation='{own}']")  # an Admin sees every sponsor's
    find(browser, "a[href='#/admin']").click()
    wait_for(
        lambda: "messages behind" in text_of(browser, "#lag-total"),
        timeout=30,
        message="consumer lag",
    )
    assert text_of(browser, "#dead-letters strong").strip() == "0"
    assert "7" in text_of(browser, "table")
    shot(browser, "11-admin-overview")
