"""`lavin serve` for real: server processes on 127.0.0.1 (and a Unix socket) with the bundled
model, spoken to by raw HTTP requests and by `lavin run --server` / `lavin video --server`."""

from __future__ import annotations

import base64
import io
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from servers import Server, query_file

from lavin_cli.store.home import bundled_dir

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
Q0, Q1 = EXAMPLES / "depth_estimation/queries/q0.png", EXAMPLES / "depth_estimation/queries/q1.png"
SLOW = json.dumps({"steps": 400})  # a few seconds of work on the bundled model
BATCH_BOUND = 1.0  # mean levels of 255 between a query alone and in a batch (README, "Sampling")

pytestmark = pytest.mark.skipif(bundled_dir() is None, reason="the server tests use the bundled model")


@pytest.fixture(scope="module")
def server():
    s = Server("--max-batch", "8", "--batch-wait-ms", "50")
    yield s
    code, _ = s.stop()
    assert code == 0


def _wait_for(check, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not check():
        if time.monotonic() > end:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


def test_lavin_run_over_a_server_writes_a_local_runs_bytes_and_record(server, cli, tmp_path):
    common = ["-t", "depth_estimation", "-i", Q0, "-i", Q1, "--steps", "4", "--seed", "3", "-b", "2"]
    assert cli("run", *common, "-o", tmp_path / "local/", "--record", tmp_path / "local.jsonl", "-q")[0] == 0
    code, _, err = cli("run", "--server", server.url, *common, "-o", tmp_path / "remote/", "--record",
                       tmp_path / "remote.jsonl")
    assert code == 0, err
    local = {p.name: p.read_bytes() for p in (tmp_path / "local").iterdir()}
    assert {p.name: p.read_bytes() for p in (tmp_path / "remote").iterdir()} == local and len(local) == 2
    lines = [json.loads(line) for line in (tmp_path / "remote.jsonl").read_text().splitlines()]
    ours = [json.loads(line) for line in (tmp_path / "local.jsonl").read_text().splitlines()]
    assert [line["type"] for line in lines] == [line["type"] for line in ours] == ["run", "query", "query", "end"]
    assert lines[0]["server"] == server.url and lines[0]["model"]["dit_sha256"] == ours[0]["model"]["dit_sha256"]
    assert [q["pairs"] for q in lines[1:3]] == [q["pairs"] for q in ours[1:3]]
    # resuming over the server: what exists is kept, the rest is computed there
    (tmp_path / "remote" / "q1.png").unlink()
    code, _, err = cli("run", "--server", server.url, *common, "-o", tmp_path / "remote/", "--skip-existing")
    assert code == 0 and "1 already there" in err
    assert (tmp_path / "remote" / "q1.png").read_bytes() == local["q1.png"]


def test_masks_over_a_server_give_a_local_runs_bytes(server, cli, tmp_path):
    """lavin run --server --mask reads each query's mask here and uploads it beside the query;
    raw requests upload them as the form's mask files, one for every query or one per query."""
    photo = np.asarray(Image.open(EXAMPLES / "denoising/queries/q0.png").convert("RGB"))
    (tmp_path / "m").mkdir()
    for name, box in (("a", (8, 20)), ("b", (30, 4))):
        Image.fromarray(photo).save(tmp_path / f"{name}.png")
        mask = np.zeros(photo.shape[:2], np.uint8)
        mask[box[0]:box[0] + 24, box[1]:box[1] + 24] = 255
        Image.fromarray(mask).save(tmp_path / "m" / f"{name}.png")
    common = ["-t", "inpainting", "-i", tmp_path / "a.png", "-i", tmp_path / "b.png", "--mask",
              str(tmp_path / "m" / "{stem}.png"), "--steps", "3", "-b", "2"]
    assert cli("run", *common, "-o", tmp_path / "local/", "-q")[0] == 0
    code, _, err = cli("run", "--server", server.url, *common, "-o", tmp_path / "remote/", "--record",
                       tmp_path / "remote.jsonl")
    assert code == 0, err
    local = {p.name: p.read_bytes() for p in (tmp_path / "local").iterdir()}
    assert {p.name: p.read_bytes() for p in (tmp_path / "remote").iterdir()} == local and len(local) == 2
    assert json.loads((tmp_path / "remote.jsonl").read_text().splitlines()[0])["mask"].endswith("{stem}.png")
    fields = {"task": "inpainting", "options": json.dumps({"steps": 3}), "format": "json"}
    queries = [query_file(tmp_path / "a.png"), query_file(tmp_path / "b.png")]
    masks = [("mask", "a.png", (tmp_path / "m" / "a.png").read_bytes()), ("mask", "b.png", b"not an image")]
    status, _, body = server.post("/v1/run", fields, queries + masks)
    answer = json.loads(body)
    assert status == 200 and answer["queries"][0]["error"] is None and "mask b.png" in answer["queries"][1]["error"]
    assert answer["header"]["mask"] == "2 masks, one per query"
    status, _, body = server.post("/v1/run", fields, queries + masks + masks[:1])
    assert status == 400 and "3 masks for 2 queries" in json.loads(body)["error"]


def test_raw_http_gives_a_local_runs_bytes(server, cli, tmp_path):
    assert cli("run", "-t", "denoising", "-i", Q0, "-o", tmp_path / "local.png", "--steps", "4", "-q")[0] == 0
    status, headers, body = server.post("/v1/run", {"task": "denoising", "options": json.dumps({"steps": 4})},
                                        [query_file(Q0)])
    assert status == 200 and headers["content-type"] == "image/png"
    assert body == (tmp_path / "local.png").read_bytes()
    entry = json.loads(headers["x-lavin-entry"])
    assert entry["pairs"] == ["000", "001", "002"] and entry["query"] == "q0.png"


def test_video_over_a_server_writes_a_local_runs_bytes(server, cli, tmp_path):
    clip = EXAMPLES / "video_depth/queries/q0.mp4"
    for name, context in (("v.mp4", ["-t", "video_depth"]), ("v.npy", ["-c", EXAMPLES / "video_depth"])):
        assert cli("video", *context, "-i", clip, "-o", tmp_path / "local" / name, "--steps", "3", "-q")[0] == 0
        code, _, err = cli("video", "--server", server.url, *context, "-i", clip, "-o", tmp_path / "remote" / name,
                           "--steps", "3", "-q")
        assert code == 0, err
        assert (tmp_path / "remote" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()


BAD = [  # (form fields, the query file, status, what the message says)
    ({"task": "denoising", "options": '{"steps": 0}'}, Q0, 400, "steps must be at least 2, got 0"),
    ({"task": "denoising", "options": '{"cfg": "strong"}'}, Q0, 400, "cfg must be a finite number"),
    ({"task": "denoising", "options": '{"size": 100}'}, Q0, 400, "width and height must be positive multiples of 16"),
    ({"task": "denoising", "options": '{"solver": "rk4"}'}, Q0, 400, "solver 'rk4' is not one of"),
    ({"task": "denoising", "options": '{"stepz": 3}'}, Q0, 400, "unknown option(s) stepz"),
    ({"task": "denoising", "options": "[1, 2]"}, Q0, 400, "give a JSON object"),
    ({"task": "inpainting", "options": '{"mask": "/etc/hostname"}'}, Q0, 400, "reads no mask files named in options"),
    ({"task": "denoising", "format": "gif"}, Q0, 400, "format 'gif' is not one of"),
    ({}, Q0, 400, "give exactly one context"),
    ({"task": "denoising", "context_id": "abc"}, Q0, 400, "give exactly one context"),
    ({"task": "nope"}, Q0, 404, "unknown task 'nope'"),
    ({"context_id": "f" * 64}, Q0, 404, "no uploaded context"),
    ({"context": "/etc"}, Q0, 403, "reads no folders"),
    ({"task": "denoising", "options": '{"max_pixels": 100}'}, Q0, 413, "above the limit of 0.0001 MP"),
    ({"task": "denoising"}, Path("/etc/hostname"), 422, "not a readable image"),
]


@pytest.mark.parametrize("fields,query,status,needle", BAD, ids=[f"{b[2]}-{i}" for i, b in enumerate(BAD)])
def test_bad_requests_are_their_status_and_the_clis_message(server, fields, query, status, needle):
    code, headers, body = server.post("/v1/run", fields, [query_file(query)])
    answer = json.loads(body)
    assert code == status and needle in answer["error"], answer
    assert answer["exit_code"] in (2, 3) and "\n" not in answer["error"]


def test_limits_of_a_request(server, tmp_path):
    from lavin_cli.io.video import describe_backend

    info = server.json("/v1/models")
    assert info["video_files"] == describe_backend()  # what decodes uploaded clips there (the same machine here)
    files = [query_file(Q0, f"q{i}.png") for i in range(info["limits"]["max_queries"] + 1)]
    code, _, body = server.post("/v1/run", {"task": "denoising"}, files)
    assert code == 413 and "queries in one request" in json.loads(body)["error"]
    big = tmp_path / "big.bin"
    big.write_bytes(b"\0" * (info["limits"]["max_body"] + 1))
    code, _, body = server.post("/v1/run", {"task": "denoising"}, [query_file(big)])
    assert code == 413 and "above this server's limit" in json.loads(body)["error"]


def test_requests_of_several_clients_share_model_calls(server):
    """Eight clients at once, one query each: fewer model calls than queries, and each answer
    within the batch-invariance bound of the query alone (README: identical in float32; in bf16
    on AMX CPUs a batch's matrix products round differently, mean below one level of 255)."""
    alone = server.post("/v1/run", {"task": "denoising", "share": "false"}, [query_file(Q0)])[2]
    before = _metric(server, "lavin_batch_queries_count")
    answers = [None] * 8

    def ask(i: int) -> None:
        answers[i] = server.post("/v1/run", {"task": "denoising"}, [query_file(Q0)])

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    calls = _metric(server, "lavin_batch_queries_count") - before
    assert all(a[0] == 200 for a in answers) and calls < 8
    reference = np.asarray(Image.open(io.BytesIO(alone)), dtype=int)
    for _, _, body in answers:
        assert np.abs(np.asarray(Image.open(io.BytesIO(body)), dtype=int) - reference).mean() <= BATCH_BOUND


def _metric(server, name: str) -> float:
    text = server.get("/metrics")[2].decode()
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " ")
               or line.startswith(name + "{"))


def test_metrics_health_models_tasks_and_schema(server):
    server.get("/v1/tasks")  # one answered request, whichever tests ran before (its latency is a bucket)
    text = server.get("/metrics")[2].decode()
    assert 'lavin_requests_total{route="/v1/tasks",status="200"}' in text
    for name in ("lavin_queue_depth", "lavin_requests_total", "lavin_request_seconds_bucket", "lavin_predictions_total",
                 "lavin_predictions_per_second", "lavin_batch_queries_bucket"):
        assert name in text, name
    assert server.json("/healthz")["status"] == "ok"
    assert server.json("/v1/models")["models"][0]["name"] == "lavin-small"
    tasks = {t["task"]: t for t in server.json("/v1/tasks")["tasks"]}
    assert tasks["depth_estimation"]["target"] == "gray" and tasks["video_depth"]["kind"] == "video"
    assert tasks["inpainting"]["keep"] == "unmasked" and tasks["depth_estimation"]["keep"] is None
    schema = server.json("/openapi.json")
    assert {"/v1/run", "/v1/video", "/v1/jobs", "/v1/contexts", "/v1/tasks", "/v1/models", "/healthz",
            "/metrics"} <= set(schema["paths"])
    page = server.get("/")[2].decode()
    assert "<script src=\"/page/page.js\">" in page and "http" not in page.split("<footer>")[0].replace("http-equiv", "")


def test_uploaded_pairs_and_jobs(server, cli, tmp_path):
    pairs = sorted((EXAMPLES / "edge_detection").glob("00[0-2]_*"))
    files = [("input" if "_input" in p.name else "target", p.name, p.read_bytes()) for p in pairs]
    answer = json.loads(server.post("/v1/contexts", {}, files)[2])
    assert answer["pairs"] == 3
    code, _, body = server.post("/v1/jobs", {"context_id": answer["id"], "format": "json"}, [query_file(Q0)])
    job = json.loads(body)["id"]
    _wait_for(lambda: server.json(f"/v1/jobs/{job}")["state"] == "done")
    result = json.loads(server.get(f"/v1/jobs/{job}/result")[2])
    assert result["queries"][0]["pairs"] == ["000", "001", "002"] and result["queries"][0]["data"]
    assert server.get(f"/v1/jobs/{job}")[0] == 404  # fetched: forgotten


def test_tcp_options_beside_a_unix_socket_are_refused(cli, tmp_path):
    for flag in ("--port", "--host"):
        code, _, err = cli("serve", "--socket", tmp_path / "s.sock", flag, "8000" if flag == "--port" else "0.0.0.0")
        assert code == 2 and f"{flag} is for TCP, and --socket" in err and not (tmp_path / "s.sock").exists(), err


def test_a_token_is_required_where_set_and_off_loopback(tmp_path):
    res = subprocess.run([sys.executable, "-m", "lavin_cli", "serve", "--host", "0.0.0.0", "--port", "0"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "give --token" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    s = Server("--token", "s3cret-token-of-enough-length")
    try:
        assert s.post("/v1/run", {"task": "denoising"}, [query_file(Q0)])[0] == 401
        assert s.post("/v1/run", {"task": "denoising"}, [query_file(Q0)], token="wrong")[0] == 401
        assert s.post("/v1/run", {"task": "denoising"}, [query_file(Q0)], token="s3cret-token-of-enough-length")[0] == 200
        assert s.get("/healthz")[0] == 200  # open: no data behind it
        res = subprocess.run([sys.executable, "-m", "lavin_cli", "run", "--server", s.url, "-t", "denoising", "-i", Q0,
                              "-o", tmp_path / "o.png"], capture_output=True, text=True, timeout=120)
        assert res.returncode == 8 and "wants a token" in res.stderr and not (tmp_path / "o.png").exists()
    finally:
        assert s.stop()[0] == 0


def test_a_full_queue_is_503_with_retry_after():
    s = Server("--queue", "1", "--max-batch", "1")
    try:
        first = json.loads(s.post("/v1/jobs", {"task": "denoising", "options": SLOW}, [query_file(Q0)])[2])["id"]
        _wait_for(lambda: s.json(f"/v1/jobs/{first}")["state"] == "running")
        assert s.post("/v1/jobs", {"task": "denoising", "options": SLOW}, [query_file(Q0)])[0] == 202  # queued
        code, headers, body = s.post("/v1/jobs", {"task": "denoising"}, [query_file(Q0)])
        assert code == 503 and headers["retry-after"] == "2" and "queue is full" in json.loads(body)["error"]
    finally:
        s.stop(signal.SIGKILL)


def test_forced_bf16_on_a_cpu_that_emulates_it_says_so_in_the_startup_line():
    s = Server("--dtype", "bfloat16", env={"ONEDNN_MAX_CPU_ISA": "AVX2"})  # emulated bf16 on any CPU
    try:
        assert "(bfloat16)" in s.lines[0] and "bfloat16 on this CPU is emulated" in s.lines[0]
        assert s.get("/healthz")[0] == 200  # the address was still read right
    finally:
        s.stop()


def test_sigterm_drains_running_work_and_refuses_new_work():
    s = Server()
    job = json.loads(s.post("/v1/jobs", {"task": "denoising", "options": SLOW}, [query_file(Q0)])[2])["id"]
    _wait_for(lambda: s.json(f"/v1/jobs/{job}")["state"] == "running")
    s.proc.send_signal(signal.SIGTERM)
    _wait_for(lambda: s.get("/healthz")[0] == 503)
    code, headers, _ = s.post("/v1/run", {"task": "denoising"}, [query_file(Q0)])
    assert code == 503 and "retry-after" in headers
    _wait_for(lambda: s.json(f"/v1/jobs/{job}")["state"] == "done")
    assert s.get(f"/v1/jobs/{job}/result")[0] == 200  # the work that was running is answered
    code, err = s.stop(None, timeout=60)  # it stops by itself once idle
    assert code == 0 and "draining" in err


def test_a_server_killed_mid_request_is_one_line_and_no_output(tmp_path):
    s = Server()
    out = tmp_path / "o.png"
    client = subprocess.Popen([sys.executable, "-m", "lavin_cli", "run", "--server", s.url, "-t", "denoising", "-i", Q0,
                               "-o", out, "--steps", "400", "-q"], stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: s.json("/healthz")["busy"] == 1)
    s.proc.kill()
    s.proc.wait()
    err = client.communicate(timeout=60)[1]
    assert client.returncode == 8 and "broke off" in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists() and not list(tmp_path.iterdir())
    res = subprocess.run([sys.executable, "-m", "lavin_cli", "run", "--server", s.url, "-t", "denoising", "-i", Q0,
                          "-o", out], capture_output=True, text=True, timeout=60)
    assert res.returncode == 8 and "cannot reach the lavin server" in res.stderr


def test_a_client_that_goes_away_has_its_pending_work_dropped():
    s = Server("--max-batch", "1")
    try:
        running = json.loads(s.post("/v1/jobs", {"task": "denoising", "options": SLOW}, [query_file(Q0)])[2])["id"]
        _wait_for(lambda: s.json(f"/v1/jobs/{running}")["state"] == "running")
        from lavin_cli.serve.client import multipart

        body, kind = multipart({"task": "denoising"}, [query_file(Q0)])
        host, port = s.url.split("//")[1].split(":")
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(f"POST /v1/run HTTP/1.1\r\nHost: x\r\nContent-Type: {kind}\r\n"
                         f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
            _wait_for(lambda: s.json("/healthz")["queue"] == 1)  # queued behind the running job
        _wait_for(lambda: s.json("/healthz")["queue"] == 0, timeout=10)  # gone with its client, not run
        assert s.json(f"/v1/jobs/{running}")["state"] == "running"
    finally:
        s.stop(signal.SIGKILL)


def test_a_unix_socket_and_the_folders_a_server_allows(tmp_path, cli):
    allowed = tmp_path / "allowed"
    (allowed / "ctx").mkdir(parents=True)
    for p in sorted((EXAMPLES / "denoising").glob("00[0-2]_*")):
        (allowed / "ctx" / p.name).write_bytes(p.read_bytes())
    (allowed / "sneaky").mkdir()
    (allowed / "sneaky" / "000_input.png").symlink_to(Path("/etc/hostname"))
    (allowed / "sneaky" / "000_target.png").symlink_to(EXAMPLES / "denoising/000_target.png")
    sock = tmp_path / "lavin.sock"
    s = Server("--socket", sock, "--allow-dir", allowed)
    try:
        assert s.url == f"unix:{sock}" and oct(sock.stat().st_mode & 0o777) == "0o600"
        ok = s.post("/v1/run", {"context": str(allowed / "ctx"), "format": "png"}, [query_file(Q0)])
        assert ok[0] == 200
        for folder in (str(allowed / "ctx" / ".." / ".." ), "/etc", str(allowed / "sneaky")):
            code, _, body = s.post("/v1/run", {"context": folder}, [query_file(Q0)])
            assert code == 403, (folder, body)
        code, _, err = cli("run", "--server", s.url, "-c", allowed / "ctx", "-i", Q0, "-o", tmp_path / "o.png", "-q")
        assert code == 0 and (tmp_path / "o.png").read_bytes() == ok[2]
    finally:
        assert s.stop()[0] == 0
    assert not sock.exists()


def test_the_page_in_headless_chromium(server, tmp_path):
    """Debian's chromium, driven by chromedriver: pick a task, drop a query, run; the page shows
    the pairs used, the query and the prediction, whose download is the API's own answer."""
    browser = _browser()
    try:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait

        _open_page(browser, server.url, "depth_estimation")
        WebDriverWait(browser, 30).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#pairs img")) == 8)
        field = browser.find_element(By.ID, "query-file")
        field.send_keys(str(Q0))
        _run_on_page(browser)
        shown = browser.find_elements(By.CSS_SELECTOR, "#grid figcaption")
        assert [f.text for f in shown] == ["000 in", "000 out", "001 in", "001 out", "002 in", "002 out", "query",
                                           "prediction"]
        href = browser.find_element(By.ID, "download").get_attribute("href")
        browser.save_screenshot(str(tmp_path / "page.png"))
    finally:
        browser.quit()
    status, _, body = server.post("/v1/run", {"task": "depth_estimation", "format": "json"}, [query_file(Q0)])
    assert _data_url_bytes(href) == base64.b64decode(json.loads(body)["queries"][0]["data"])


def test_the_page_paints_the_area_to_fill(server, tmp_path):
    """On the page, paint over the query (a stroke, Clear, another stroke): the run sends the
    painted area as the request's mask, shows it, and the prediction keeps the query's pixels
    everywhere else; the download is the API's own answer to the same mask."""
    query = EXAMPLES / "denoising/000_target.png"
    browser = _browser()
    try:
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait

        _open_page(browser, server.url, "inpainting")
        browser.find_element(By.ID, "query-file").send_keys(str(query))
        WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "mask-box").is_displayed())
        canvas = browser.find_element(By.ID, "mask-paint")
        for y in (-100, 0):  # offsets from the canvas's centre, in CSS pixels (256 wide)
            ActionChains(browser).move_to_element_with_offset(canvas, -60, y).click_and_hold() \
                .move_by_offset(60, 0).move_by_offset(60, 10).release().perform()
            if y == -100:
                browser.find_element(By.ID, "mask-clear").click()
        _run_on_page(browser)
        shown = {f.text: f for f in browser.find_elements(By.CSS_SELECTOR, "#grid figure")}
        assert list(shown)[-3:] == ["query", "area filled", "prediction"]
        mask_url = shown["area filled"].find_element(By.TAG_NAME, "img").get_attribute("src")
        href = browser.find_element(By.ID, "download").get_attribute("href")
        browser.save_screenshot(str(tmp_path / "page.png"))
    finally:
        browser.quit()
    mask_png = _data_url_bytes(mask_url)
    mask = np.asarray(Image.open(io.BytesIO(mask_png)).convert("L")) >= 128
    source = np.asarray(Image.open(query).convert("RGB"))
    assert mask.shape == source.shape[:2]
    rows = np.flatnonzero(mask.any(axis=1))
    h = mask.shape[0]
    assert 0 < mask.mean() < 0.3 and rows.min() > h * 0.3, "the stroke before Clear was sent, or nothing"
    predicted = np.asarray(Image.open(io.BytesIO(_data_url_bytes(href))).convert("RGB"))
    assert (predicted[~mask] == source[~mask]).all() and (predicted[mask] != source[mask]).any()
    files = [query_file(query), ("mask", "mask.png", mask_png)]
    status, _, body = server.post("/v1/run", {"task": "inpainting", "format": "json",
                                              "options": json.dumps({"steps": 11, "cfg": 1.5, "seed": 0})},
                                 files)
    assert status == 200
    assert _data_url_bytes(href) == base64.b64decode(json.loads(body)["queries"][0]["data"])


def _open_page(browser, url: str, task: str) -> None:
    """The page loaded, with a task of the server chosen."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    browser.get(url)
    WebDriverWait(browser, 30).until(lambda d: len(Select(d.find_element(By.ID, "task")).options) > 0)
    Select(browser.find_element(By.ID, "task")).select_by_value(task)


def _run_on_page(browser) -> None:
    """Run, and wait until the page shows the result (or an error, which fails the test)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.find_element(By.ID, "run").click()
    WebDriverWait(browser, 120).until(lambda d: d.find_element(By.ID, "result").is_displayed()
                                      or "bad" in (d.find_element(By.ID, "message").get_attribute("class") or ""))
    assert browser.find_element(By.ID, "message").text == "done"


def _data_url_bytes(url: str) -> bytes:
    return base64.b64decode(url.split(",", 1)[1])


def _browser():
    import os
    import shutil

    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        webdriver = None
    if not (chromium and driver and webdriver):
        if os.environ.get("CI"):
            pytest.fail("the page test needs Debian's chromium and chromium-driver and selenium (README's install)")
        pytest.skip("needs Debian's chromium, chromium-driver and selenium")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1280,900"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(driver), options=options)


def test_a_server_without_a_video_codec_says_so_before_a_clip_is_sent(cli, tmp_path):
    """A real server whose Python has neither imageio-ffmpeg nor PyAV (both hidden at its start):
    /v1/models says so, `lavin video --server` refuses an mp4 before sending it (exit 2, one
    line naming the clip and the fix), and GIF clips still run there."""
    import os

    from lavin_cli.io import video as video_io
    from lavin_cli.training import tasks

    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text("import sys\nsys.modules['imageio_ffmpeg'] = None\nsys.modules['av'] = None\n")
    pairs = tmp_path / "pairs"
    pairs.mkdir()
    for i in range(2):
        a, b = tasks.pair("video_depth", 40 + i, 32)
        video_io.write_video(pairs / f"{i}_input.gif", video_io.Clip(tasks.to_uint8(a), 8))
        video_io.write_video(pairs / f"{i}_target.gif", video_io.Clip(tasks.to_uint8(b), 8))
    q, _ = tasks.pair("video_depth", 50, 32)
    video_io.write_video(tmp_path / "q.gif", video_io.Clip(tasks.to_uint8(q), 8))
    (tmp_path / "q.mp4").write_bytes(b"never sent")
    s = Server(env={"PYTHONPATH": os.pathsep.join(filter(None, [str(hide), os.environ.get("PYTHONPATH")]))})
    try:
        assert s.json("/v1/models")["video_files"].startswith("none: GIFs and frame folders only")
        base = ["video", "--server", s.url, "-c", pairs, "--steps", "2"]
        code, _, err = cli(*base, "-i", tmp_path / "q.mp4", "-o", tmp_path / "a.gif", "-q")
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert f"q.mp4: the lavin server at {s.url} reads no video files but GIFs" in err and "imageio-ffmpeg" in err
        assert not (tmp_path / "a.gif").exists()
        code, _, err = cli(*base, "-i", tmp_path / "q.gif", "-o", tmp_path / "b.gif", "-q")
        assert code == 0, err
        assert video_io.read_video(tmp_path / "b.gif").frames.shape == (5, 32, 32, 3)
    finally:
        s.stop()
