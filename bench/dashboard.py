"""The dashboard's instance list and its live updates, measured in headless Chromium.

    .venv/bin/python bench/dashboard.py [--servers 1000,10000] [--booted 20] [--loads 7] [--events 10]

A cloud on fake nodes (identity, image, compute, placement, network, dashboard).  ``--booted``
servers are made through the Compute API (they run on the fake nodes and take actions); the rest
of each ``--servers`` count are rows written straight into the servers table, as in
bench/compute_scale.py (a large cloud's history).  The admin signs in through the login form of
Debian's Chromium (Playwright, /usr/bin/chromium), then:

(a) the instance list at the largest page size the page offers, loaded ``--loads`` times:
    time to first paint and first contentful paint, to the last byte of the HTML, and to the
    page complete (the load event: every row in the DOM, the stylesheet and the script done),
    with the page weight (HTML and every resource, as sent and decoded);
(b) the same page's HTML and stylesheet from files, to tell the browser's part from the server's;
(c) events: a booted server stopped (or started) through the API while the page is open; the
    time from the API's answer (202) to the row changing on screen (the task state the API set),
    and from the moment the API first shows the new status (polled every 20 ms) to the row
    showing it.  Times come from one clock: the browser's Date.now() and Python's time.time().

Goals (issue 16): the 1,000-server list complete in < 1 s; a state change on screen < 0.5 s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import start_cumulo, stop  # noqa: E402
from bench.compute_scale import boot, fill, pct  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SERVICES = "identity,image,compute,placement,network,dashboard"

# what the page's timings say once the load event has passed (ms from the navigation's start)
TIMINGS = """() => {
  const nav = performance.getEntriesByType("navigation")[0];
  const paint = Object.fromEntries(performance.getEntriesByType("paint").map(p => [p.name, p.startTime]));
  const res = performance.getEntriesByType("resource");
  const sum = (k) => res.reduce((n, r) => n + (r[k] || 0), 0);
  return {ttfb: nav.responseStart, html_done: nav.responseEnd, dcl: nav.domContentLoadedEventEnd,
          load: nav.loadEventEnd, first_paint: paint["first-paint"], fcp: paint["first-contentful-paint"],
          html_sent: nav.encodedBodySize, html_bytes: nav.decodedBodySize, html_transfer: nav.transferSize,
          res_sent: sum("encodedBodySize"), res_bytes: sum("decodedBodySize"), resources: res.length,
          rows: document.querySelectorAll("tr[data-kind=server]").length,
          slowest: res.map(r => [r.name.replace(location.origin, ""), Math.round(r.startTime),
                                 Math.round(r.responseEnd)]).sort((a, b) => b[2] - a[2])[0] || null};
}"""

# installs a watcher of one row: when its status cell changes, and when it shows ``want``
WATCH_ROW = """([id, want]) => {
  const cell = () => { const r = document.getElementById("row-server-" + id);
                       return r ? r.querySelector("td.status").textContent.trim() : null; };
  const first = cell();
  window.benchSeen = {first, changed: null, wanted: null};
  const check = () => {
    const now = Date.now(), text = cell();
    if (window.benchSeen.changed === null && text !== first) window.benchSeen.changed = now;
    if (window.benchSeen.wanted === null && text && text.startsWith(want)) window.benchSeen.wanted = now;
  };
  if (window.benchObserver) window.benchObserver.disconnect();
  window.benchObserver = new MutationObserver(check);
  window.benchObserver.observe(document.body, {childList: true, subtree: true, characterData: true});
  return first;
}"""


def in_thread(coro: Any) -> None:
    """Run ``coro`` to its end on a loop of its own, in another thread."""
    worker = threading.Thread(target=asyncio.run, args=(coro,))
    worker.start()
    worker.join()


def free_base(span: int = 10) -> int:
    """A first port whose ``span`` neighbours are all free (other benchmarks may run beside this one)."""
    for _ in range(200):
        base = random.randrange(24000, 31000)
        try:
            for port in (*range(base, base + span), base + 4000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise SystemExit("no free ports")


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def sign_in(page: Any, base: str, user: str, password: str) -> None:
    page.goto(base + "/project/")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", password)
    page.click("form[action='/auth/login'] button[type=submit]")
    page.wait_for_url(base + "/project/")


def largest_page_size(page: Any, base: str) -> int:
    page.goto(base + "/project/instances")
    sizes = page.eval_on_selector_all("select[name=limit] option", "els => els.map(e => parseInt(e.value || e.text))")
    return max(int(s) for s in sizes)


def measure_list(page: Any, url: str, loads: int, expect_rows: int) -> dict[str, Any]:
    runs = []
    for _ in range(loads):
        page.goto(url, wait_until="load")
        t = page.evaluate(TIMINGS)
        assert t["rows"] == expect_rows, f"{t['rows']} rows on the page, {expect_rows} expected"
        runs.append(t)
    warm = runs[1:] or runs

    def med(key: str) -> float:
        return statistics.median(r[key] for r in warm) / 1000

    return {"first_paint": med("first_paint"), "fcp": med("fcp"), "ttfb": med("ttfb"), "html_done": med("html_done"),
            "dcl": med("dcl"), "load": med("load"), "load_max": max(r["load"] for r in warm) / 1000,
            "cold_load": runs[0]["load"] / 1000, "html_sent": runs[-1]["html_sent"],
            "html_bytes": runs[-1]["html_bytes"], "res_sent": runs[-1]["res_sent"],
            "res_bytes": runs[-1]["res_bytes"], "resources": runs[-1]["resources"], "n": len(warm),
            "slowest": runs[-1]["slowest"]}


def report_list(label: str, m: dict[str, Any]) -> None:
    total = m["html_sent"] + m["res_sent"]
    print(f"(a) {label}: first paint {ms(m['first_paint'])}, first contentful paint {ms(m['fcp'])}, "
          f"HTML first byte {ms(m['ttfb'])}, last byte {ms(m['html_done'])}, DOM ready {ms(m['dcl'])}, "
          f"complete (load event) {ms(m['load'])} median of {m['n']} (max {ms(m['load_max'])}; "
          f"first load {ms(m['cold_load'])})", flush=True)
    print(f"    page weight: HTML {m['html_sent']:,} B as sent ({m['html_bytes']:,} B decoded) + "
          f"{m['resources']} resources {m['res_sent']:,} B = {total:,} B; the last resource done: {m['slowest']} "
          "(path, start, end in ms)", flush=True)


def report_file(page: Any, work: Path, url: str, loads: int) -> None:
    """The browser's own part: the same page's HTML and stylesheet from files (no server, no script)."""
    page.goto(url, wait_until="load")
    html = page.content().replace('href="/static/app.css"', 'href="app.css"')
    (work / "app.css").write_bytes(httpx.get(url.split("/project/")[0] + "/static/app.css").content)
    (work / "list.html").write_text(html)
    runs = []
    for _ in range(loads):
        page.goto((work / "list.html").as_uri(), wait_until="load")
        runs.append(page.evaluate(TIMINGS))
    warm = runs[1:] or runs
    print(f"(b) the same page from a file (the browser alone: parse, style, layout; no server, no script): first "
          f"paint {ms(statistics.median(r['first_paint'] for r in warm) / 1000)}, DOM ready "
          f"{ms(statistics.median(r['dcl'] for r in warm) / 1000)}, load "
          f"{ms(statistics.median(r['load'] for r in warm) / 1000)} median of {len(warm)}", flush=True)


def api_poll(compute: str, headers: dict[str, str], server_id: str, want: str, out: dict[str, float],
             stop_at: float) -> None:
    with httpx.Client(timeout=10) as client:
        while time.time() < stop_at:
            s = client.get(f"{compute}/servers/{server_id}", headers=headers).json()["server"]
            if s["status"] == want and s.get("OS-EXT-STS:task_state") is None:
                out["api"] = time.time()
                return
            time.sleep(0.02)


def measure_events(page: Any, compute: str, headers: dict[str, str], servers: list[str], trials: int
                   ) -> dict[str, list[float]]:
    """Stop/start booted servers in turn, each on the open list; returns the latencies in seconds."""
    first_change: list[float] = []
    lag: list[float] = []
    to_screen: list[float] = []
    with httpx.Client(timeout=30) as client:
        for i in range(trials):
            server_id = servers[i % len(servers)]
            status = client.get(f"{compute}/servers/{server_id}", headers=headers).json()["server"]["status"]
            action, want = ({"os-stop": None}, "SHUTOFF") if status == "ACTIVE" else ({"os-start": None}, "ACTIVE")
            page.evaluate(WATCH_ROW, [server_id, want])
            seen: dict[str, float] = {}
            poller = threading.Thread(target=api_poll, args=(compute, headers, server_id, want, seen,
                                                             time.time() + 30))
            t0 = time.time()
            r = client.post(f"{compute}/servers/{server_id}/action", headers=headers, json=action)
            accepted = time.time()
            assert r.status_code == 202, r.text
            poller.start()
            try:
                page.wait_for_function("() => window.benchSeen.changed !== null && window.benchSeen.wanted !== null",
                                       timeout=30000, polling=50)
            except Exception:
                s = client.get(f"{compute}/servers/{server_id}", headers=headers).json()["server"]
                print(f"the row never showed {want}: the page saw {page.evaluate('() => window.benchSeen')}, the API "
                      f"says {s['status']} ({s['OS-EXT-STS:task_state']})", flush=True)
                raise
            poller.join()
            got = page.evaluate("() => window.benchSeen")
            first_change.append(got["changed"] / 1000 - accepted)
            to_screen.append(got["wanted"] / 1000 - t0)
            if "api" in seen:
                lag.append(got["wanted"] / 1000 - seen["api"])
    return {"first_change": first_change, "lag": lag, "to_screen": to_screen}


def report_events(label: str, e: dict[str, list[float]]) -> None:
    def summary(values: list[float]) -> str:
        return f"p50 {ms(pct(values, 50))} p90 {ms(pct(values, 90))} max {ms(max(values))}" if values else "none"

    print(f"(c) {label}, {len(e['first_change'])} stops/starts: the API's 202 -> row changed on screen "
          f"{summary(e['first_change'])}; the API first showing the new status -> the row showing it "
          f"{summary(e['lag'])} (API polled every 20 ms); POST -> new status on screen {summary(e['to_screen'])}",
          flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--servers", default="1000,10000", help="server counts to measure at, ascending")
    ap.add_argument("--booted", type=int, default=20, help="servers made through the API (the rest are rows)")
    ap.add_argument("--nodes", type=int, default=4)
    ap.add_argument("--loads", type=int, default=7)
    ap.add_argument("--events", type=int, default=10)
    ap.add_argument("--port", type=int, default=0, help="the first of 10 ports (default: a free range)")
    args = ap.parse_args()
    counts = [int(n) for n in args.servers.split(",")]

    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="cumulo-bench-dashboard-"))
    p = args.port or free_base()
    env = {"CUMULO_SERVICES": SERVICES, "CUMULO_COMPUTE__FAKE_NODES": str(args.nodes),
           "CUMULO_COMPUTE__PORT": str(p + 1), "CUMULO_PLACEMENT__PORT": str(p + 2), "CUMULO_IMAGE__PORT": str(p + 3),
           "CUMULO_COMPUTE__METADATA_PORT": str(p + 4), "CUMULO_NETWORK__PORT": str(p + 5),
           "CUMULO_DASHBOARD__PORT": str(p + 6), "CUMULO_COMPUTE__SERIAL_PROXY_PORT": str(p + 7),
           "CUMULO_COMPUTE__NOVNC_PROXY_PORT": str(p + 8), "CUMULO_COMPUTE__REPORT_INTERVAL": "10",
           "CUMULO_COMPUTE__BUILD_TIMEOUT": "600"}
    db_url = f"sqlite:///{work}/cumulo/cumulo.db"
    compute, base = f"http://127.0.0.1:{p + 1}/v2.1", f"http://127.0.0.1:{p + 6}"
    proc, ep = start_cumulo(work, 4, p, env)
    try:
        r = httpx.post(f"{ep.url}/auth/tokens", json={"auth": {"identity": {"methods": ["password"], "password": {
            "user": {"name": ep.user, "domain": {"id": "default"}, "password": ep.password}}},
            "scope": {"project": {"name": ep.project, "domain": {"id": "default"}}}}})
        r.raise_for_status()
        tok, body = r.headers["x-subject-token"], r.json()["token"]
        headers = {"X-Auth-Token": tok, "OpenStack-API-Version": "compute 2.79"}
        project, user = body["project"]["id"], body["user"]["id"]
        for name in ("instances", "cores", "ram"):
            httpx.put(f"{compute}/os-quota-sets/{project}", headers=headers,
                      json={"quota_set": {name: -1}}).raise_for_status()
        deadline = time.monotonic() + 60
        while len(httpx.get(f"{compute}/os-hypervisors", headers=headers).json()["hypervisors"]) < args.nodes:
            if time.monotonic() > deadline:
                raise SystemExit("the fake nodes did not register")
            time.sleep(0.5)
        image = httpx.get(f"http://127.0.0.1:{p + 3}/v2/images?name=cumulo-tiny", headers={"X-Auth-Token": tok}
                          ).json()["images"][0]["id"]
        # the history first, then the booted servers: they are the newest, at the top of the first page
        asyncio.run(fill(db_url, counts[0] - args.booted, project, user, image))
        wall, _ = asyncio.run(boot(compute, headers, image, args.booted, 5))
        booted = [s["id"] for s in httpx.get(f"{compute}/servers?limit={args.booted}&sort_key=created_at",
                                             headers=headers).json()["servers"]]
        print(f"setup: {counts[0]} servers ({args.booted} booted on {args.nodes} fake nodes in {wall:.1f} s)",
              flush=True)
        have = counts[0]
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
            sign_in(page, base, ep.user, ep.password)
            size = largest_page_size(page, base)
            url = f"{base}/project/instances?limit={size}"
            for count in counts:
                if count > have:
                    in_thread(fill(db_url, count - have, project, user, image))  # Playwright's loop runs here
                    have = count
                t0 = time.perf_counter()
                r = httpx.get(f"{compute}/servers/detail?limit={size + 1}&sort_key=created_at&sort_dir=desc",
                              headers=headers, timeout=60)
                api_time = time.perf_counter() - t0
                m = measure_list(page, url, args.loads, min(size, count))
                report_list(f"{count:,} servers, the list at {size} a page (the API's GET /servers/detail "
                            f"alone: {ms(api_time)}; load average {os.getloadavg()[0]:.1f})", m)
                report_file(page, work, url, args.loads)
                page.goto(url, wait_until="load")
                page.wait_for_function("() => !!window.cumuloEvents && window.cumuloEvents.readyState === 1",
                                       timeout=10000)
                report_events(f"{count:,} servers", measure_events(page, compute, headers, booted, args.events))
            browser.close()
    finally:
        stop(proc)
        shutil.rmtree(work, ignore_errors=True)  # the cloud's state and the page saved to a file
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
