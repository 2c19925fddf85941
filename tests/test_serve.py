"""`nst serve`'s JSON API through starlette's test client: jobs to done, the PNG and its
parameters (16-bit and colour-managed as the CLI writes them), the event stream, cancel,
uploads and options refused as the CLI refuses them, the token and the same-origin check,
the gallery across a restart, sweeps, --preview."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("starlette")
pytest.importorskip("multipart")

from starlette.testclient import TestClient
from test_bit_depth import decode_png16

from nst.errors import NSTWarning
from nst.runtime.config import DEFAULT_WEIGHTS, RULES, StylizeConfig
from nst.runtime.images import encode_image

from icc_profiles import matrix_profile_bytes

BASE = "http://127.0.0.1:8765"
TINY = {"iterations": 10, "size": 64, "seed": 3}


def png(width: int, height: int, seed: int) -> bytes:
    """A smooth seeded image (blurred-up noise), as PNG bytes."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 256, (4, 5, 3), dtype=np.uint8))
    buffer = io.BytesIO()
    coarse.resize((width, height), Image.Resampling.BICUBIC).save(buffer, format="PNG")
    return buffer.getvalue()


CONTENT = png(64, 48, 1)
STYLE = png(40, 40, 2)


def upload(options=None, *, content=CONTENT, styles=(STYLE,), content_name="photo.png"):
    files = [("content", (content_name, content, "image/png"))]
    files += [("style", (f"style{i}.png", data, "image/png")) for i, data in enumerate(styles)]
    return {"files": files, "data": {"options": json.dumps(TINY if options is None else options)}}


@pytest.fixture(scope="module")
def session(vgg19_onnx):
    """One Stylizer for the module: as in the server, the model loads once."""
    from nst.runtime.stylize import Stylizer

    return Stylizer(vgg19_onnx, device="cpu")


def make_client(session, outdir: Path, **settings) -> TestClient:
    from nst.serve.app import Settings, create_app
    from nst.serve.gallery import Gallery
    from nst.serve.runner import JobQueue

    queue = JobQueue([session], Gallery(outdir))
    app = create_app(queue, queue=queue, info={"mode": "serve", "model": "test", "devices": ["cpu"]},
                     settings=Settings(**settings))  # fmt: skip
    return TestClient(app, base_url=BASE)


@pytest.fixture
def client(session, tmp_path):
    with make_client(session, tmp_path / "gallery") as test_client:
        yield test_client


def wait(client, job_id: str, statuses=("done", "failed", "cancelled"), timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["status"] in statuses:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} still {job['status']} after {timeout} s")


def read_events(client, job_id: str) -> list[tuple[str, dict, float]]:
    events, name = [], None
    with client.stream("GET", f"/api/jobs/{job_id}/events") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                events.append((name, json.loads(line[6:]), time.monotonic()))
    return events


def test_job_runs_to_done_with_the_library_s_image_and_the_cli_s_parameters(client, session, tmp_path):
    response = client.post("/api/jobs", **upload())
    assert response.status_code == 201, response.text
    job_id = response.json()["id"]
    assert response.headers["location"] == f"/api/jobs/{job_id}"
    # Loss scale auto is settled as the job queues, as nst stylize settles it (a random VGG-19: balanced).
    queued = response.json()["options"]
    assert (queued["loss_scale"], queued["style_weight"]) == ("balanced", DEFAULT_WEIGHTS["balanced"][1])
    job = wait(client, job_id)
    assert job["status"] == "done", job
    assert job["iteration"] == job["iterations"] == 10 and job["error"] is None
    assert set(job["losses"]) == {"total", "content", "style", "tv"}

    image = client.get(f"/api/jobs/{job_id}/image")
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    served = Image.open(io.BytesIO(image.content))
    assert served.size == (64, 48)
    parameters = json.loads(served.text["nst:parameters"])
    assert parameters["iterations"] == 10 and parameters["seed"] == 3 and parameters["size"] == 64
    assert parameters["content"] == "photo.png" and parameters["styles"] == ["style0.png"]
    assert parameters["device"] == "cpu" and parameters["model_weights_sha256"] == session.model.info.weights_sha256
    assert parameters["loss_scale"] == "balanced" and parameters["style_weight"] == DEFAULT_WEIGHTS["balanced"][1]
    assert parameters["model_source_sha256"] == session.model.info.source_sha256

    # The same inputs and seed through the library give the same pixels (CPU runs are bit-reproducible).
    (tmp_path / "c.png").write_bytes(CONTENT)
    (tmp_path / "s.png").write_bytes(STYLE)
    expected = session.stylize(tmp_path / "c.png", styles=[tmp_path / "s.png"], config=StylizeConfig(**TINY))
    assert np.array_equal(np.asarray(served.convert("RGB")), np.asarray(expected))

    download = client.get(f"/api/jobs/{job_id}/image?download=1")
    assert download.headers["content-disposition"] == f'attachment; filename="nst-{job_id}.png"'
    assert download.content == image.content
    listed = client.get("/api/jobs").json()["jobs"]
    assert [j["id"] for j in listed] == [job_id]


def test_the_page_s_auto_weights_are_those_of_the_scale_auto_resolves_to(client):
    weights = client.get("/api/info").json()["weights"]
    assert weights["auto"] == weights["balanced"] != weights["reference"]


def test_events_come_in_order_at_most_five_a_second_and_end_with_done(client):
    job_id = client.post("/api/jobs", **upload({**TINY, "iterations": 12})).json()["id"]
    start = time.monotonic()
    events = read_events(client, job_id)
    elapsed = time.monotonic() - start
    names = [name for name, _, _ in events]
    assert names[-1] == "done" and set(names[:-1]) == {"progress"}, names
    done = events[-1][1]
    assert done["status"] == "done" and done["iteration"] == 12
    # The rows, joined over the events, are every iteration once, in order.
    rows = [row for _, data, _ in events for row in data["history"]]
    assert [row["i"] for row in rows] == list(range(1, 13))
    assert all(set(row) == {"i", "total", "content", "style", "tv"} for row in rows)
    iterations = [data["iteration"] for _, data, _ in events]
    assert iterations == sorted(iterations)
    assert len(events) <= elapsed / 0.2 + 1, (len(events), elapsed)


def test_an_event_stream_opened_after_the_end_gives_the_whole_history_and_done(client):
    job_id = client.post("/api/jobs", **upload()).json()["id"]
    wait(client, job_id)
    events = read_events(client, job_id)
    assert [name for name, _, _ in events] == ["done"]
    assert [row["i"] for row in events[0][1]["history"]] == list(range(1, 11))


def test_cancel_stops_a_running_job_and_keeps_its_best_image(client):
    job_id = client.post("/api/jobs", **upload({**TINY, "iterations": 100_000})).json()["id"]
    deadline = time.monotonic() + 60
    while client.get(f"/api/jobs/{job_id}").json()["iteration"] < 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    live = client.get(f"/api/jobs/{job_id}/image")  # the best image so far, while it runs
    assert live.status_code == 200 and live.content.startswith(b"\x89PNG")
    response = client.delete(f"/api/jobs/{job_id}")
    assert response.status_code == 202
    job = wait(client, job_id)
    assert job["status"] == "cancelled" and 2 <= job["iteration"] < 100_000
    kept = Image.open(io.BytesIO(client.get(f"/api/jobs/{job_id}/image?download=1").content))
    assert kept.size == (64, 48) and json.loads(kept.text["nst:parameters"])["iterations"] == 100_000
    assert client.delete(f"/api/jobs/{job_id}").status_code == 409


def test_a_queued_job_cancels_at_once_and_the_queue_runs_one_job_at_a_time(client):
    first = client.post("/api/jobs", **upload({**TINY, "iterations": 100_000})).json()["id"]
    second = client.post("/api/jobs", **upload()).json()["id"]
    wait(client, first, statuses=("running",))
    assert client.get(f"/api/jobs/{second}").json()["status"] == "queued"
    assert client.delete(f"/api/jobs/{second}").status_code == 202
    assert client.get(f"/api/jobs/{second}").json()["status"] == "cancelled"
    assert client.get(f"/api/jobs/{second}/image").status_code == 404
    client.delete(f"/api/jobs/{first}")
    assert wait(client, first)["status"] == "cancelled"


def test_a_failing_job_fails_alone_and_the_next_one_runs(client):
    # 30000 px from a 64 px photo passes the option checks; the memory guard refuses it at run time.
    failing = client.post("/api/jobs", **upload({**TINY, "size": 30_000})).json()["id"]
    fine = client.post("/api/jobs", **upload()).json()["id"]
    job = wait(client, failing)
    assert job["status"] == "failed" and job["error"].startswith("this run needs about") and "\n" not in job["error"]
    assert wait(client, fine)["status"] == "done"


@pytest.mark.parametrize(
    ("options", "status", "message"),
    [
        ({"style_weight": -1}, 422, f"--style-weight {RULES['style_weight'].describe()}, got -1"),
        ({"iterations": 0}, 422, f"--iterations {RULES['iterations'].describe()}, got 0"),
        ({"iterations": 10.5}, 422, "--iterations must be a whole number, got 10.5"),
        ({"optimizer": "sgd"}, 422, "--optimizer must be one of adam, lbfgs, got 'sgd'"),
        ({"low_memory": "yes"}, 422, "--low-memory must be true or false, got 'yes'"),
        ({"stlye_weight": 5}, 422, "unknown option 'stlye_weight'; did you mean style_weight?"),
        ({"bit_depth": 12}, 422, "--bit-depth must be one of 8, 16, got 12"),
        ({"device": "cuda"}, 422, "--device is the server's to choose, not a job's; remove it from the options"),
        ({"labels": "/etc/hosts"}, 422, "--labels is the server's to choose, not a job's; remove it from the options"),
        ({"style_blend_weights": [1, 2]}, 422, "--style-blend-weights has 2 values for 1 style(s); give one per style"),
        ([1, 2], 422, 'options must be a JSON object such as {"iterations": 300}'),
    ],
)
def test_bad_options_answer_422_with_the_cli_s_message(client, options, status, message):
    response = client.post("/api/jobs", **upload(options))
    assert (response.status_code, response.json()) == (status, {"error": message})


def test_the_cli_refuses_a_bad_option_with_the_same_rule(tmp_path):
    from click.testing import CliRunner

    from nst.cli import main

    result = CliRunner().invoke(
        main, ["stylize", "a.png", "b.png", "-o", str(tmp_path / "o.png"), "--style-weight", "-1"]
    )
    assert result.exit_code == 2 and f"{RULES['style_weight'].describe()}, got '-1'" in result.output


def test_options_as_the_cli_spells_them_are_accepted():
    from nst.serve.options import job_config

    config = job_config({"style-weight": 50, "style_scales": [1, 0.5], "iterations": 300.0})
    assert (config.style_weight, config.style_scales, config.iterations) == (50, (1, 0.5), 300)
    assert isinstance(config.iterations, int) and config.seed is not None  # drawn, so the PNG can record it


def tagged(profile: bytes) -> bytes:
    """CONTENT as a PNG that embeds `profile`."""
    buffer = io.BytesIO()
    Image.open(io.BytesIO(CONTENT)).save(buffer, format="PNG", icc_profile=profile)
    return buffer.getvalue()


def test_a_16_bit_job_in_the_content_s_profile_downloads_as_nst_stylize_writes_it(client, session, tmp_path):
    adobe = matrix_profile_bytes()
    options = {**TINY, "bit_depth": "16", "output_profile": "content"}  # "16": as the page's <select> sends it
    response = client.post("/api/jobs", **upload(options, content=tagged(adobe)))
    assert response.status_code == 201, response.text
    job = wait(client, response.json()["id"])
    assert job["status"] == "done" and job["options"]["bit_depth"] == 16, job
    served = client.get(f"/api/jobs/{job['id']}/image?download=1").content
    pixels, chunks = decode_png16(served)
    assert b"iCCP" in chunks and Image.open(io.BytesIO(served)).info["icc_profile"] == adobe
    assert json.loads(Image.open(io.BytesIO(served)).text["nst:parameters"])["content"] == "photo.png"

    # The library's float image, encoded as the CLI encodes it: the same 16-bit pixels.
    (tmp_path / "c.png").write_bytes(tagged(adobe))
    (tmp_path / "s.png").write_bytes(STYLE)
    config = StylizeConfig(**{**TINY, "bit_depth": 16, "output_profile": "content"})
    rendered = session.render(tmp_path / "c.png", styles=[tmp_path / "s.png"], config=config)
    expected, _ = decode_png16(encode_image(rendered, "x.png", bit_depth=16, profile=adobe))
    assert np.array_equal(pixels, expected) and len(np.unique(pixels)) > 256


def test_a_profile_the_output_cannot_take_is_refused_before_the_job_queues(client):
    # LUT based: converted at 8 bits only (a stub lcms cannot use: the upload's check warns, on the server's console)
    lut = matrix_profile_bytes(extra=((b"A2B0", b"mft2\0\0\0\0"),))
    options = {**TINY, "bit_depth": 16, "output_profile": "content"}
    with pytest.warns(NSTWarning, match=r"^'photo\.png' embeds an ICC profile that cannot be used"):
        response = client.post("/api/jobs", **upload(options, content=tagged(lut)))  # named as uploaded
    assert response.status_code == 422
    assert response.json()["error"].startswith("--output-profile content with --bit-depth 16: the content's ICC")
    assert client.get("/api/jobs").json()["jobs"] == []


def test_bad_uploads_answer_4xx_in_one_line_naming_the_client_s_file(client, tmp_path):
    gallery = tmp_path / "gallery" / "inputs"
    cases = [
        (upload(content=b"just some notes\n", content_name="notes.txt"), 415, "'notes.txt'"),
        (upload(content=CONTENT[: len(CONTENT) // 2], content_name="cut.png"), 415, "'cut.png'"),
        (upload(content=png(8, 8, 3), content_name="tiny.png"), 422, "'tiny.png' is 8x8 px"),
        ({"files": [("content", ("p.png", CONTENT, "image/png"))]}, 400, "give 1 to 8 style images"),
        ({"files": [("style", ("s.png", STYLE, "image/png"))]}, 400, "give one content image"),
        (
            {"data": {"content": "not a file"}, "files": [("style", ("s.png", STYLE, "image/png"))]},
            400,
            "must be a file",
        ),
        ({"files": upload()["files"], "data": {"options": "{iterations: 3"}}, 400, "is not valid JSON"),
    ]
    for request, status, words in cases:
        response = client.post("/api/jobs", **request)
        error = response.json()["error"]
        assert response.status_code == status and words in error and "\n" not in error, (words, response.text)
        assert str(gallery) not in error  # the server's paths stay on the server
    assert client.get("/api/jobs").json()["jobs"] == []
    assert not [p for p in gallery.iterdir() if p.suffix not in (".png",)]  # nothing half-written


def test_no_client_name_reaches_a_path(client, tmp_path):
    response = client.post("/api/jobs", **upload(content_name="../../escape.png"))
    assert response.status_code == 201
    assert response.json()["content"] == "escape.png"
    assert not (tmp_path / "escape.png").exists() and not list(tmp_path.rglob("escape.png"))
    assert client.get("/api/jobs/..%2F..%2Fmanifest/image").status_code == 404
    client.delete(f"/api/jobs/{response.json()['id']}")


def test_uploads_over_the_cap_answer_413(session, tmp_path):
    with make_client(session, tmp_path / "g", max_upload=20_000) as small:
        big = png(200, 200, 5)
        assert len(big) > 20_000
        response = small.post("/api/jobs", **upload(content=big))
        assert response.status_code == 413
        assert response.json()["error"].endswith("the limit is 0.0190735 MB (nst serve --max-upload-mb)")

        def chunks():  # no Content-Length: the cap holds as the bytes arrive
            for _ in range(30):
                yield b"x" * 1000

        chunked = small.post("/api/jobs", content=chunks(), headers={"content-type": "multipart/form-data; boundary=b"})
        assert chunked.status_code == 413 and "the limit is" in chunked.json()["error"]
        assert small.post("/api/jobs", **upload()).status_code == 201


def test_a_token_is_required_off_the_loopback_interface(session, tmp_path):
    from nst.serve.security import Access

    with make_client(session, tmp_path / "g", access=Access(token="s3cret")) as guarded:
        assert guarded.get("/api/jobs").status_code == 401
        assert guarded.get("/api/jobs?token=wrong").status_code == 403
        assert guarded.get("/api/jobs", headers={"x-nst-token": "wrong"}).status_code == 403
        assert guarded.get("/api/jobs?token=s3cret").status_code == 200
        assert guarded.get("/api/jobs", headers={"authorization": "Bearer s3cret"}).status_code == 200
        assert guarded.post("/api/jobs", **upload()).status_code == 401
        page = guarded.get("/?token=s3cret")  # the page sets a cookie for its own requests
        assert page.status_code == 200 and "nst_token_8765" in page.headers["set-cookie"]
        assert (
            "httponly" in page.headers["set-cookie"].lower() and "samesite=strict" in page.headers["set-cookie"].lower()
        )
        assert guarded.get("/api/jobs").status_code == 200  # by cookie
        # A cookie alone does not let another origin change anything.
        cross = guarded.post("/api/jobs", **upload(), headers={"origin": "http://127.0.0.1:9999"})
        assert cross.status_code == 403 and "cross-origin" in cross.json()["error"]
        assert guarded.post("/api/jobs", **upload(), headers={"origin": BASE}).status_code == 201


def test_on_loopback_cross_site_requests_and_foreign_hosts_are_refused(client):
    assert client.get("/api/jobs", headers={"host": "evil.example:8765"}).status_code == 403  # DNS rebinding
    assert client.get("/api/jobs", headers={"host": "localhost:8765"}).status_code == 200
    for headers in (
        {"origin": "http://evil.example"},
        {"sec-fetch-site": "cross-site"},
        {"sec-fetch-site": "same-site"},
    ):
        response = client.post("/api/jobs", **upload(), headers=headers)
        assert response.status_code == 403, headers
    assert client.get("/api/jobs").json()["jobs"] == []
    same = client.post("/api/jobs", **upload(), headers={"origin": BASE, "sec-fetch-site": "same-origin"})
    assert same.status_code == 201
    client.delete(f"/api/jobs/{same.json()['id']}")


def test_the_gallery_survives_a_restart(session, tmp_path):
    outdir = tmp_path / "gallery"
    with make_client(session, outdir) as first:
        job_id = first.post("/api/jobs", **upload()).json()["id"]
        before = wait(first, job_id)
        image = first.get(f"/api/jobs/{job_id}/image").content
    record = json.loads((outdir / "manifest.jsonl").read_text().splitlines()[-1])
    assert record["output"] == f"{job_id}.png" and record["status"] == "done" and record["seed"] == 3
    assert record["options"]["iterations"] == 10 and record["content"] == "photo.png"
    with make_client(session, outdir) as second:
        after = second.get(f"/api/jobs/{job_id}").json()
        assert after["status"] == "done" and after["losses"] == before["losses"]
        assert after["iteration"] == 10 and after["options"] == before["options"]
        assert second.get(f"/api/jobs/{job_id}/image").content == image
        assert [row["i"] for row in read_events(second, job_id)[0][1]["history"]] == list(range(1, 11))


def test_a_sweep_runs_one_job_per_value_and_gives_a_contact_sheet(client, tmp_path):
    form = upload()
    form["data"]["sweep"] = json.dumps({"option": "style_weight", "values": [10, 1000]})
    response = client.post("/api/sweeps", **form)
    assert response.status_code == 201, response.text
    sweep = response.json()
    assert sweep["option"] == "style_weight" and sweep["values"] == [10, 1000]
    jobs = [wait(client, j["id"]) for j in sweep["jobs"]]
    assert [j["options"]["style_weight"] for j in jobs] == [10, 1000]
    assert len({j["options"]["seed"] for j in jobs}) == 1  # only the swept option differs
    sheet = client.get(f"/api/sweeps/{sweep['id']}/sheet")
    assert sheet.status_code == 200
    strip = Image.open(io.BytesIO(sheet.content))
    assert strip.width > 2 * 48 and strip.height < strip.width
    assert (tmp_path / "gallery" / f"sweep-{sweep['id']}.png").is_file()
    bad = upload()
    bad["data"]["sweep"] = json.dumps({"option": "style_weight", "values": [10, -1]})
    assert client.post("/api/sweeps", **bad).json() == {
        "error": f"--style-weight {RULES['style_weight'].describe()}, got -1"
    }


def test_the_page_and_its_files_are_served_without_a_cdn(client):
    page = client.get("/")
    assert page.status_code == 200 and "/static/app.js" in page.text
    for path in ("/static/app.js", "/static/app.css", "/static/examples/hubble-deep-field.jpg"):
        assert client.get(path).status_code == 200, path
    for text in (page.text, client.get("/static/app.js").text, client.get("/static/app.css").text):
        assert "http://" not in text.replace("http://www.w3.org/2000/svg", "") and "https://" not in text
    info = client.get("/api/info").json()
    assert info["readonly"] is False and {o["name"] for o in info["options"]} >= {"size", "style_weight", "seed"}
    # Nothing that names a file on the server is a job's to set.
    assert not {"device", "initial", "style_masks", "labels", "content_mask", "style_regions"} & {
        o["name"] for o in info["options"]
    }


def test_preview_serves_a_cli_run_read_only(session, tmp_path):
    import urllib.error
    import urllib.request

    from nst.serve.preview import start_preview

    config = StylizeConfig(**TINY)
    (tmp_path / "c.png").write_bytes(CONTENT)
    preview = start_preview(0, config=config, content=tmp_path / "c.png", styles=[tmp_path / "c.png"])
    try:
        info = json.load(urllib.request.urlopen(preview.url + "api/info", timeout=10))
        assert info["readonly"] is True and info["mode"] == "preview"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(
                urllib.request.Request(preview.url + "api/jobs", data=b"", method="POST"), timeout=10
            )
        assert refused.value.code == 405
        session.stylize(tmp_path / "c.png", styles=[tmp_path / "c.png"], config=config, callback=preview.callback)
        preview.finish("done")
        job_id = preview.job.id
        stream = urllib.request.urlopen(preview.url + f"api/jobs/{job_id}/events", timeout=10).read().decode()
        assert stream.count("event: done") == 1 and stream.rstrip().splitlines()[-2] == "event: done"
        frame = urllib.request.urlopen(preview.url + f"api/jobs/{job_id}/image", timeout=10).read()
        assert Image.open(io.BytesIO(frame)).size == (64, 48)
    finally:
        preview.close()
