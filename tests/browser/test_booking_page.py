"""The booking page (web/, served at /book/{id} by the local gateway) as a
visitor uses it: pick a slot, hold it, pay on the Stripe simulator's hosted
page, come back to the confirmed booking, download it as .ics, cancel it; two
visitors racing for one slot; keyboard use; a phone's viewport.

The API base is $SLOTGUARD_BROWSER_API (scripts/browser-test sets it). Every
customer below is a ("name", "address") pair, so scripts/check-logs knows to
look for them in the logs.
"""
import datetime
import json
import os
import re
import threading
import urllib.parse
import urllib.request
import zoneinfo

import pytest
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException, TimeoutException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.ui import WebDriverWait

API = os.environ.get("SLOTGUARD_BROWSER_API", "http://127.0.0.1:13000")
SIM = os.environ.get("SLOTGUARD_BROWSER_SIM", "http://127.0.0.1:13111")
ADMIN_TOKEN = os.environ.get("SLOTGUARD_BROWSER_ADMIN_TOKEN", "")
PAGE = API + "/book/demo"
TAKEN = "That time was just taken — please pick another."

PAYING = ("Grace Pagehopper", "grace.pagehopper@example.com")
RETURNING = ("Katherine Pagejohnson", "katherine.page@example.com")
STRICT = ("Edsger Pagedijkstra", "edsger.page@example.org")
RACER_A = ("Ada Pagelace", "ada.pagelace@example.org")
RACER_B = ("Alan Pageturing", "alan.pageturing@example.net")


def api(method, path, secret=None, body=None, base=API):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, method=method, data=data)
    if secret:
        req.add_header("authorization", "Bearer " + secret)
    if data is not None:
        req.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as res:
            return res.status, json.loads(res.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def wait(driver, condition, timeout=20, what="condition"):
    try:
        # A page that navigates (to Stripe's page and back) replaces its elements mid-check.
        ignored = (StaleElementReferenceException, NoSuchElementException)
        return WebDriverWait(driver, timeout, poll_frequency=0.1, ignored_exceptions=ignored).until(condition)
    except TimeoutException:
        raise AssertionError(f"timed out after {timeout}s waiting for {what} (at {driver.current_url})") from None


def open_page(driver, url=PAGE):
    driver.get(url)
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "button.sg-slot"), what="slot buttons")


def slot_starts(driver):
    """The starts the slot buttons offer, in page order (one round trip, not one per button)."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('button.sg-slot'), b => b.getAttribute('data-start'))")


def bookable(starts):
    """The first start at least two hours ahead. A slot is offered from the
    hold's length ahead, but checkout needs a Stripe session (30 minutes and
    margins) to end before it starts: sooner slots are refused at checkout."""
    soon = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=2)
    later = [s for s in starts if datetime.datetime.fromisoformat(s.replace("Z", "+00:00")) >= soon]
    assert later, "no open slot two hours ahead on the first page"
    return later[0]


def slot_button(driver, start):
    found = driver.find_elements(By.CSS_SELECTOR, f'button.sg-slot[data-start="{start}"]')
    assert found, f"no slot button for {start}"
    return found[0]


def fill_details(driver, customer):
    name, email = customer
    driver.find_element(By.ID, "sg-name").send_keys(name)
    driver.find_element(By.ID, "sg-email").send_keys(email)


def element_text(driver, element_id):
    """An element's text in one script call, so a page navigating away mid-read gives "" and not an error."""
    return driver.execute_script(
        "const e = document.getElementById(arguments[0]); return e ? e.innerText : ''", element_id) or ""


def alert_text(driver):
    return element_text(driver, "sg-alert")


def status_text(driver):
    return element_text(driver, "sg-status")


def at_checkout(driver):
    return "/c/pay/" in driver.current_url


def utc_basic(instant):
    return datetime.datetime.fromisoformat(instant.replace("Z", "+00:00")).strftime("%Y%m%dT%H%M%SZ")


def test_book_pay_add_to_calendar_and_cancel(browser):
    zone = "America/New_York"
    browser.execute_cdp_cmd("Emulation.setTimezoneOverride", {"timezoneId": zone})
    open_page(browser)

    # Times are shown in the visitor's zone, grouped under that zone's day.
    start = bookable(slot_starts(browser))
    button = slot_button(browser, start)
    local = datetime.datetime.fromisoformat(start.replace("Z", "+00:00")).astimezone(zoneinfo.ZoneInfo(zone))
    shown = re.sub(r"[\u202f\u00a0]", " ", button.text)
    assert shown == local.strftime("%I:%M %p"), (shown, start)
    day = button.find_element(By.XPATH, "ancestor::section[1]/h3").text
    assert day == f"{local.strftime('%A')}, {local.strftime('%B')} {local.day}", day
    assert zone in browser.find_element(By.CSS_SELECTOR, ".sg-meta").text

    button.click()
    assert button.get_attribute("aria-pressed") == "true"
    fill_details(browser, PAYING)
    browser.find_element(By.ID, "sg-hold").click()

    # The simulator's hosted checkout page; Pay delivers the webhook and redirects.
    wait(browser, at_checkout, what="the hosted checkout page")
    browser.find_element(By.CSS_SELECTOR, "form[action$='/pay'] button").click()
    wait(browser, lambda d: d.current_url.startswith(PAGE + "?reservation="), what="the return to the booking page")
    query = urllib.parse.parse_qs(urllib.parse.urlparse(browser.current_url).query)
    reservation = query["reservation"][0]
    assert reservation.startswith("rsv_demo_")
    assert "cancelled" not in query
    wait(browser, lambda d: d.find_element(By.ID, "sg-details").get_attribute("data-status") == "confirmed",
         what="the confirmed booking")
    assert "confirmed" in status_text(browser)

    secret = browser.execute_script("return sessionStorage.getItem('slotguard:secret:' + arguments[0])", reservation)
    assert secret and secret.startswith("rsk_")
    assert secret not in browser.current_url
    status, booking = api("GET", f"/v1/reservations/{reservation}", secret)
    assert status == 200 and booking["status"] == "confirmed", (status, booking)
    assert booking["start"] == start

    # The .ics: a Blob link with a download name, valid RFC 5545 in UTC.
    link = browser.find_element(By.ID, "sg-ics")
    assert link.get_attribute("download") == f"booking-{reservation}.ics"
    assert link.get_attribute("href").startswith("blob:")
    ics = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0]).then(r => r.text()).then(done, e => done('fetch failed: ' + e));",
        link.get_attribute("href"))
    assert ics.startswith("BEGIN:VCALENDAR\r\n") and ics.endswith("END:VCALENDAR\r\n"), ics[:80]
    lines = ics[:-2].split("\r\n")
    assert "\n" not in ics.replace("\r\n", ""), "bare line feeds"
    assert all(len(line.encode()) <= 75 for line in lines)
    for required in ("VERSION:2.0", "BEGIN:VEVENT", "END:VEVENT", f"UID:{reservation}@slotguard",
                     f"DTSTART:{utc_basic(booking['start'])}", f"DTEND:{utc_basic(booking['end'])}",
                     "SUMMARY:Demo coaching call"):
        assert required in lines, (required, lines)
    assert any(re.fullmatch(r"DTSTAMP:\d{8}T\d{6}Z", line) for line in lines), lines
    assert [line.split(":")[0] for line in lines if line.startswith("PRODID")] == ["PRODID"]

    # Cancel: two steps, then the refund the API made.
    browser.find_element(By.ID, "sg-cancel").click()
    browser.find_element(By.ID, "sg-cancel-confirm").click()
    wait(browser, lambda d: "Your booking is cancelled" in status_text(d), what="the cancelled state")
    assert "Refunded: €45.00" in status_text(browser), status_text(browser)
    assert browser.find_element(By.ID, "sg-details").get_attribute("data-status") == "cancelled"
    assert not browser.find_elements(By.ID, "sg-ics")
    status, after = api("GET", f"/v1/reservations/{reservation}", secret)
    assert status == 200 and after["status"] == "cancelled", (status, after)
    # The slot is open again.
    status, slots = api("GET", f"/v1/resources/demo/slots?from={urllib.parse.quote(start)}"
                               f"&to={urllib.parse.quote(booking['end'])}")
    assert status == 200 and [s["start"] for s in slots["slots"]] == [start], slots


def two_visitors_on_one_slot(browsers):
    a, b = browsers(), browsers()
    open_page(a)
    open_page(b)
    common = [s for s in slot_starts(a) if s in set(slot_starts(b))]
    assert common, "the two visitors see no common slot"
    start = bookable(common)
    for driver, customer in ((a, RACER_A), (b, RACER_B)):
        slot_button(driver, start).click()
        fill_details(driver, customer)
    return a, b, start


def assert_lost(driver, start):
    """The loser stays on the page, told the time was taken, with a list without it."""
    assert not at_checkout(driver)
    alert = driver.find_element(By.ID, "sg-alert")
    assert alert.get_attribute("role") == "alert"
    assert alert.text == TAKEN
    wait(driver, lambda d: d.find_element(By.ID, "sg-days").get_attribute("aria-busy") == "false"
         and d.find_elements(By.CSS_SELECTOR, "button.sg-slot"), what="the refreshed slot list")
    assert start not in slot_starts(driver), "the taken slot is still offered"


def test_race_second_visitor_is_told_and_sees_a_refreshed_list(browsers):
    a, b, start = two_visitors_on_one_slot(browsers)
    a.find_element(By.ID, "sg-hold").click()
    wait(a, at_checkout, what="the first visitor's checkout")
    b.find_element(By.ID, "sg-hold").click()
    wait(b, lambda d: alert_text(d), what="the second visitor's alert")
    assert_lost(b, start)


def test_race_concurrent_holds_have_exactly_one_winner(browsers):
    a, b, start = two_visitors_on_one_slot(browsers)
    barrier = threading.Barrier(2)
    errors = []

    def press(driver):
        try:
            barrier.wait(timeout=10)
            driver.execute_script("document.getElementById('sg-hold').click()")
        except Exception as e:  # reported below, in the test's thread
            errors.append(e)

    threads = [threading.Thread(target=press, args=(d,)) for d in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for d in (a, b):
        wait(d, lambda d: at_checkout(d) or alert_text(d), what="an outcome for each visitor")
    winners = [d for d in (a, b) if at_checkout(d)]
    losers = [d for d in (a, b) if not at_checkout(d)]
    assert len(winners) == 1 and len(losers) == 1, f"{len(winners)} visitors reached checkout"
    assert_lost(losers[0], start)


def test_keyboard_and_labels(browser):
    open_page(browser)
    root = browser.find_element(By.CSS_SELECTOR, "[data-slotguard-booking]")
    fields = root.find_elements(By.CSS_SELECTOR, "input, select, textarea")
    assert len(fields) >= 2
    for field in fields:
        fid = field.get_attribute("id")
        labels = browser.find_elements(By.CSS_SELECTOR, f'label[for="{fid}"]') if fid else []
        assert len(labels) == 1 and labels[0].text.strip(), f"field {field.get_attribute('name')} has no label"
    assert all(b.tag_name == "button" for b in root.find_elements(By.CSS_SELECTOR, ".sg-slot"))
    assert browser.find_element(By.ID, "sg-status").get_attribute("aria-live") == "polite"

    # Tab from the top of the page to the first slot, and Enter picks it.
    browser.find_element(By.TAG_NAME, "body").click()
    active = None
    for _ in range(40):
        ActionChains(browser).send_keys(Keys.TAB).perform()
        active = browser.switch_to.active_element
        if "sg-slot" in (active.get_attribute("class") or ""):
            break
    else:
        raise AssertionError("no slot button reached with Tab")
    outline = browser.execute_script("return getComputedStyle(arguments[0]).outlineStyle", active)
    assert outline not in ("none", ""), "the focused slot shows no focus outline"
    assert active.get_attribute("aria-pressed") == "false"
    ActionChains(browser).send_keys(Keys.ENTER).perform()
    assert active.get_attribute("aria-pressed") == "true"
    assert browser.find_element(By.ID, "sg-selected").text.startswith("Picked: ")

    # On through the form by Tab alone: name, e-mail, the hold button.
    seen = []
    for _ in range(200):
        ActionChains(browser).send_keys(Keys.TAB).perform()
        seen.append(browser.switch_to.active_element.get_attribute("id"))
        if seen[-1] == "sg-hold":
            break
    assert [i for i in seen if i in ("sg-name", "sg-email", "sg-hold")] == ["sg-name", "sg-email", "sg-hold"], seen[-5:]
    # Holding without details is refused on the page, with a message.
    ActionChains(browser).send_keys(Keys.ENTER).perform()
    assert alert_text(browser) == "Please enter your name."
    assert browser.switch_to.active_element.get_attribute("id") == "sg-name"


@pytest.mark.parametrize("width,height", [(390, 844), (320, 640)])
def test_phone_viewport_has_no_horizontal_scroll(browser, width, height):
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": True})
    open_page(browser)
    slot_button(browser, slot_starts(browser)[0]).click()
    sizes = browser.execute_script(
        "return [document.documentElement.scrollWidth, window.innerWidth, document.documentElement.clientWidth]")
    assert sizes[1] == width, sizes
    assert sizes[0] <= sizes[1], f"scrollWidth {sizes[0]} > innerWidth {sizes[1]}"
    shots = os.environ.get("SLOTGUARD_BROWSER_SHOTS")
    if shots and width == 390:
        browser.save_screenshot(os.path.join(shots, "phone-390.png"))


def hold_and_reach_checkout(driver, customer, page=PAGE):
    open_page(driver, page)
    slot_button(driver, bookable(slot_starts(driver))).click()
    fill_details(driver, customer)
    driver.find_element(By.ID, "sg-hold").click()
    wait(driver, at_checkout, what="the hosted checkout page")
    return driver.current_url


def reservation_of(driver):
    return urllib.parse.parse_qs(urllib.parse.urlparse(driver.current_url).query)["reservation"][0]


def booking_status(driver):
    return driver.find_element(By.ID, "sg-details").get_attribute("data-status")


def test_cancelled_checkout_keeps_the_hold_and_pay_now_resumes_it(browser):
    checkout = hold_and_reach_checkout(browser, RETURNING)
    browser.find_element(By.CSS_SELECTOR, "form[action$='/cancel'] button").click()
    wait(browser, lambda d: "&cancelled=1" in d.current_url and d.find_elements(By.ID, "sg-pay"),
         what="the page after a cancelled checkout")
    assert booking_status(browser) == "held"
    assert status_text(browser).startswith("Payment was not completed. The time stays held for you until ")
    assert not browser.find_elements(By.ID, "sg-cancel")
    # Pay now: the same Checkout Session again (same return URLs), then paid.
    browser.find_element(By.ID, "sg-pay").click()
    wait(browser, at_checkout, what="the checkout page again")
    assert browser.current_url == checkout
    browser.find_element(By.CSS_SELECTOR, "form[action$='/pay'] button").click()
    wait(browser, lambda d: "cancelled" not in d.current_url and d.find_elements(By.ID, "sg-details")
         and booking_status(d) == "confirmed", what="the confirmed booking")


def test_an_expired_checkout_says_the_time_was_released(browser):
    checkout = hold_and_reach_checkout(browser, RETURNING)
    session = urllib.parse.urlparse(checkout).path.rsplit("/", 1)[-1]
    status, _ = api("POST", f"/_sim/checkout/sessions/{session}/expire", base=SIM)
    assert status == 200
    # The customer comes back later through the cancel URL.
    sessions = api("GET", "/_sim/checkout/sessions", base=SIM)[1]["sessions"]
    reservation = [s for s in sessions if s["id"] == session][0]["metadata"]["reservation_id"]
    browser.get(f"{PAGE}?reservation={reservation}&cancelled=1")
    wait(browser, lambda d: d.find_elements(By.ID, "sg-details") and booking_status(d) == "released",
         what="the released reservation")
    assert status_text(browser) == ("The checkout ended without a payment, so this time was released. "
                                    "You have not been charged.")
    assert not browser.find_elements(By.CSS_SELECTOR, "#sg-actions button, #sg-ics")


STRICT_RESOURCE = {
    "name": "Strict consultation",
    "timezone": "UTC",
    "hold_minutes": 30,
    "weekly_hours": {d: [{"start": "09:00", "end": "17:00"}] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
    "booking_types": [
        {"id": "intro", "name": "Intro call", "durations": [{"minutes": 15, "price": {"amount": 1500, "currency": "eur"}}]},
        {"id": "consult", "name": "Consultation",
         "durations": [{"minutes": 30, "price": {"amount": 4500, "currency": "eur"}},
                       {"minutes": 60, "price": {"amount": 8000, "currency": "eur"}}],
         "start_interval_minutes": 30,
         "cancellation": {"free_until_hours": 8760, "late": "refuse"}},
    ],
}


def test_types_durations_and_a_refused_cancellation(browser):
    status, body = api("PUT", "/v1/resources/browser-strict", ADMIN_TOKEN, STRICT_RESOURCE)
    assert status == 200, (status, body)
    page = API + "/book/browser-strict"
    open_page(browser, page)
    assert browser.find_element(By.CSS_SELECTOR, 'label[for="sg-type"]').text == "What to book"
    Select(browser.find_element(By.ID, "sg-type")).select_by_value("consult")
    wait(browser, lambda d: d.find_elements(By.ID, "sg-duration"), what="the duration choice")
    assert browser.find_element(By.CSS_SELECTOR, 'label[for="sg-duration"]').text == "Length"
    Select(browser.find_element(By.ID, "sg-duration")).select_by_value("60")
    assert browser.find_element(By.CSS_SELECTOR, ".sg-meta").text.startswith("Consultation · 60 min · €80.00")
    wait(browser, lambda d: d.find_element(By.ID, "sg-days").get_attribute("aria-busy") == "false"
         and d.find_elements(By.CSS_SELECTOR, "button.sg-slot"), what="the 60-minute slots")
    start = bookable(slot_starts(browser))
    slot_button(browser, start).click()
    fill_details(browser, STRICT)
    browser.find_element(By.ID, "sg-hold").click()
    wait(browser, at_checkout, what="the hosted checkout page")
    assert "80.00 EUR" in browser.find_element(By.TAG_NAME, "h1").text
    browser.find_element(By.CSS_SELECTOR, "form[action$='/pay'] button").click()
    wait(browser, lambda d: d.find_elements(By.ID, "sg-details") and booking_status(d) == "confirmed",
         what="the confirmed booking")
    reservation = reservation_of(browser)
    secret = browser.execute_script("return sessionStorage.getItem('slotguard:secret:' + arguments[0])", reservation)
    _, booking = api("GET", f"/v1/reservations/{reservation}", secret)
    assert (booking["booking_type"], booking["amount"]) == ("consult", 8000), booking
    end = datetime.datetime.fromisoformat(booking["end"].replace("Z", "+00:00"))
    assert end - datetime.datetime.fromisoformat(start.replace("Z", "+00:00")) == datetime.timedelta(minutes=60)

    browser.find_element(By.ID, "sg-cancel").click()
    browser.find_element(By.ID, "sg-cancel-confirm").click()
    wait(browser, lambda d: alert_text(d), what="the refusal")
    assert alert_text(browser).startswith("Outside cancellation window: "), alert_text(browser)
    wait(browser, lambda d: d.find_elements(By.ID, "sg-cancel"), what="the booking shown again")
    assert booking_status(browser) == "confirmed"
    assert api("GET", f"/v1/reservations/{reservation}", secret)[1]["status"] == "confirmed"


def test_an_unknown_resource_says_so(browser):
    browser.get(API + "/book/no-such-resource")
    wait(browser, lambda d: alert_text(d), what="the problem")
    assert browser.find_element(By.TAG_NAME, "h2").text == "Booking unavailable"
    assert alert_text(browser).startswith("Not found"), alert_text(browser)
    assert not browser.find_elements(By.CSS_SELECTOR, "button.sg-slot, input")


def test_a_failed_checkout_is_retried_on_the_same_hold(browser):
    open_page(browser)
    start = bookable(slot_starts(browser))
    slot_button(browser, start).click()
    fill_details(browser, RETURNING)
    assert api("POST", "/_sim/fail?status=500&count=50", base=SIM)[0] == 200
    try:
        browser.find_element(By.ID, "sg-hold").click()
        wait(browser, lambda d: alert_text(d), what="the checkout problem")
    finally:
        assert api("POST", "/_sim/fail?count=0", base=SIM)[0] == 200
    assert not at_checkout(browser)
    assert alert_text(browser) != TAKEN and ": " in alert_text(browser), alert_text(browser)
    # Again: checkout for the hold it has, not a second hold (which would be refused as taken).
    browser.find_element(By.ID, "sg-hold").click()
    wait(browser, at_checkout, what="the hosted checkout page")
    end = (datetime.datetime.fromisoformat(start.replace("Z", "+00:00")) + datetime.timedelta(minutes=1)).isoformat()
    status, listing = api("GET", f"/v1/admin/resources/demo/bookings?from={urllib.parse.quote(start)}"
                                 f"&to={urllib.parse.quote(end)}", ADMIN_TOKEN)
    assert status == 200
    holds = [b["status"] for b in listing["bookings"] if b["start"] == start]
    assert holds == ["held"], holds
