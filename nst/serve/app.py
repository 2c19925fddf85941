"""The web app: the page and its files, and the JSON API that the page itself uses
(docs/SERVE.md). `create_app` builds it over a job queue (`nst serve`) or over one run of
the CLI, read-only (`nst stylize --preview`)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from nst.errors import ConfigError, ImageError, NSTError
from nst.runtime.config import StylizeConfig
from nst.runtime.icc import output_profile
from nst.runtime.images import probe_image, resized_shape
from nst.serve.events import INTERVAL, finite, job_events
from nst.serve.gallery import display_name, new_job_id
from nst.serve.jobs import Inputs, Job
from nst.serve.options import default_weights, job_config, option_specs, sweep_configs
from nst.serve.runner import JobQueue
from nst.serve.security import TOKEN_PARAM, Access, ASGIApp, BodyLimit, Guard, cookie_name
from nst.serve.sweep import Sweep, sheet

STATIC = Path(__file__).with_name("static")
# The images under static/examples (copies of the repository's examples/), for a first try.
EXAMPLES = (("astronaut.jpg", "content"), ("chelsea.jpg", "content"), ("hubble-deep-field.jpg", "style"))
MAX_STYLES = 8
DEFAULT_MAX_UPLOAD = 100 * 2**20  # bytes in one request, all its images together


@dataclass(frozen=True)
class Settings:
    access: Access = field(default_factory=Access)
    max_upload: int = DEFAULT_MAX_UPLOAD
    event_interval: float = INTERVAL  # seconds between two events of a stream, at least


class Board(Protocol):
    """What the read-only routes show: the job queue's jobs, or a CLI run's one job."""

    def get(self, job_id: str) -> Job | None: ...

    def all(self) -> list[Job]: ...


def create_app(
    board: Board, *, info: dict[str, Any], settings: Settings = Settings(), queue: JobQueue | None = None
) -> ASGIApp:
    """The app; with `queue`, jobs can be started, cancelled and swept (and the queue's workers
    run while the app does), else the page only watches."""
    api = Api(board, queue, info={**info, "readonly": queue is None}, settings=settings)
    app = Starlette(
        routes=api.routes(),
        exception_handlers={HTTPException: _http_error, NSTError: _nst_error},
        lifespan=api.lifespan,
    )
    return Guard(BodyLimit(app, settings.max_upload), settings.access)


class Api:
    """The routes, over one board (and, for `nst serve`, its queue)."""

    def __init__(self, board: Board, queue: JobQueue | None, *, info: dict[str, Any], settings: Settings):
        self.board, self.queue, self.info, self.settings = board, queue, info, settings

    def routes(self) -> list[BaseRoute]:
        routes: list[BaseRoute] = [
            Route("/", self.index),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
            Route("/api/info", self.get_info),
            Route("/api/jobs", self.list_jobs, methods=["GET"]),
            Route("/api/jobs/{id}", self.get_job, methods=["GET"]),
            Route("/api/jobs/{id}/image", self.image),
            Route("/api/jobs/{id}/events", self.events),
        ]
        if self.queue is not None:
            routes += [
                Route("/api/jobs", self.create_job, methods=["POST"]),
                Route("/api/jobs/{id}", self.cancel_job, methods=["DELETE"]),
                Route("/api/sweeps", self.create_sweep, methods=["POST"]),
                Route("/api/sweeps", self.list_sweeps, methods=["GET"]),
                Route("/api/sweeps/{id}", self.get_sweep),
                Route("/api/sweeps/{id}/sheet", self.sweep_sheet),
            ]
        return routes

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        if self.queue is not None:
            self.queue.start()
        try:
            yield
        finally:
            if self.queue is not None:
                self.queue.stop()
                await run_in_threadpool(self.queue.join)

    async def index(self, request: Request) -> Response:
        response = FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})
        token = request.query_params.get(TOKEN_PARAM)
        if token and self.settings.access.token is not None:  # valid: the guard let it through
            port = (request.scope.get("server") or ("", 0))[1] or 0
            response.set_cookie(cookie_name(int(port)), token, httponly=True, samesite="strict")
        return response

    async def get_info(self, request: Request) -> Response:
        examples = [{"name": name, "role": role, "url": f"/static/examples/{name}"} for name, role in EXAMPLES]
        auto = self.queue.resolve(StylizeConfig()).loss_scale if self.queue is not None else None
        return JSONResponse(
            {
                **self.info,
                "max_upload_bytes": self.settings.max_upload,
                "options": option_specs(),
                "weights": default_weights(auto),
                "examples": examples,
            }
        )

    async def list_jobs(self, request: Request) -> Response:
        return _json({"jobs": [job.summary() for job in self.board.all()]})

    async def get_job(self, request: Request) -> Response:
        return _json(self._job(request).summary())

    async def image(self, request: Request) -> Response:
        """The finished PNG (with its parameters) when there is one, else the best image so far."""
        job = self._job(request)
        download = "download" in request.query_params
        if job.output is not None and job.finished:
            name = f"nst-{job.id}.png" if download else None
            return FileResponse(
                job.output, media_type="image/png", filename=name, headers={"Cache-Control": "no-store"}
            )
        if download:
            raise HTTPException(409, f"job {job.id} has no finished image to download ({job.status})")
        data = await run_in_threadpool(job.live.frame)
        if data is None:
            raise HTTPException(404, f"job {job.id} has no image yet ({job.status})")
        return Response(data, media_type="image/png", headers={"Cache-Control": "no-store"})

    async def events(self, request: Request) -> Response:
        stream = job_events(self._job(request), interval=self.settings.event_interval)
        return StreamingResponse(
            stream, media_type="text/event-stream", headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        )

    async def create_job(self, request: Request) -> Response:
        assert self.queue is not None
        form = await request.form(max_files=1 + MAX_STYLES, max_fields=8)
        config = job_config(_options(form))
        inputs = await self._inputs(form, [config])
        job = Job(new_job_id(), config, inputs)
        self.queue.submit([job])
        return _json(job.summary(), status=201, headers={"Location": f"/api/jobs/{job.id}"})

    async def cancel_job(self, request: Request) -> Response:
        assert self.queue is not None
        job = self._job(request)
        if not self.queue.cancel(job):
            raise HTTPException(409, f"job {job.id} has finished already ({job.status})")
        return _json(job.summary(), status=202)

    async def create_sweep(self, request: Request) -> Response:
        """The same inputs once per value of one option: `sweep` is {"option": ..., "values": [...]}."""
        assert self.queue is not None
        form = await request.form(max_files=1 + MAX_STYLES, max_fields=8)
        spec = _json_field(form, "sweep", {})
        if not isinstance(spec, dict):
            raise ConfigError('sweep must be a JSON object such as {"option": "style_weight", "values": [50, 500]}')
        variants = sweep_configs(job_config(_options(form)), spec.get("option"), spec.get("values"))
        inputs = await self._inputs(form, [config for _, config in variants])
        sweep_id = new_job_id()
        jobs = [Job(new_job_id(), config, inputs, sweep=sweep_id, parameters=values) for values, config in variants]
        sweep = Sweep(sweep_id, next(iter(variants[0][0])), [job.id for job in jobs])
        self.queue.submit(jobs, sweep)
        return _json(sweep.summary(jobs), status=201, headers={"Location": f"/api/sweeps/{sweep_id}"})

    async def list_sweeps(self, request: Request) -> Response:
        assert self.queue is not None
        found = [self.queue.sweep(i) for i in sorted(self.queue.sweeps)]
        return _json({"sweeps": [s.summary(jobs) for s, jobs in filter(None, found)]})

    async def get_sweep(self, request: Request) -> Response:
        sweep, jobs = self._sweep(request)
        return _json(sweep.summary(jobs))

    async def sweep_sheet(self, request: Request) -> Response:
        assert self.queue is not None
        sweep, jobs = self._sweep(request)
        path = await run_in_threadpool(sheet, sweep, jobs, self.queue.gallery)
        if path is None:
            left = sum(not job.finished for job in jobs)
            raise HTTPException(409, f"sweep {sweep.id} has {left} job(s) still to finish")
        return FileResponse(path, media_type="image/png", headers={"Cache-Control": "no-store"})

    def _job(self, request: Request) -> Job:
        job = self.board.get(request.path_params["id"])
        if job is None:
            raise HTTPException(404, f"no job {request.path_params['id']!r}")
        return job

    def _sweep(self, request: Request) -> tuple[Sweep, list[Job]]:
        assert self.queue is not None
        found = self.queue.sweep(request.path_params["id"])
        if found is None:
            raise HTTPException(404, f"no sweep {request.path_params['id']!r}")
        return found

    async def _inputs(self, form: FormData, configs: Sequence[StylizeConfig]) -> Inputs:
        """The uploaded content and styles, checked as the CLI checks them (decoded in full,
        under the pixel limit, the content large enough at each config's size) and kept."""
        assert self.queue is not None
        content = _files(form, "content")
        styles = _files(form, "style")
        if len(content) != 1:
            raise HTTPException(400, "give one content image (the multipart field 'content', a file)")
        if not 1 <= len(styles) <= MAX_STYLES:
            raise HTTPException(400, f"give 1 to {MAX_STYLES} style images (the multipart field 'style', a file each)")
        for config in configs:
            _check_styles(config, len(styles))
        uploads = [(await f.read(), display_name(f.filename, f"image {i + 1}")) for i, f in enumerate(content + styles)]
        gallery = self.queue.gallery
        paths = [await run_in_threadpool(gallery.store_upload, data, name=name) for data, name in uploads]
        await run_in_threadpool(_check_content, paths[0], uploads[0][1], configs)
        return Inputs(paths[0], tuple(paths[1:]), uploads[0][1], tuple(name for _, name in uploads[1:]))


def _files(form: FormData, field: str) -> list[UploadFile]:
    values = form.getlist(field)
    if any(not isinstance(v, UploadFile) for v in values):
        raise HTTPException(400, f"the multipart field {field!r} must be a file, not text")
    return [v for v in values if isinstance(v, UploadFile)]


def _json_field(form: FormData, field: str, default: Any) -> Any:
    text = form.get(field)
    if text is None or text == "":
        return default
    if not isinstance(text, str):
        raise HTTPException(400, f"the multipart field {field!r} must be JSON text, not a file")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise HTTPException(400, f"the multipart field {field!r} is not valid JSON ({exc})") from None


def _options(form: FormData) -> Any:
    return _json_field(form, "options", {})


def _check_styles(config: StylizeConfig, count: int) -> None:
    from nst.runtime.plan import style_blend, style_scales  # plan loads torch: only when a job is checked

    style_blend(config, count)
    style_scales(config, count, None)


def _check_content(path: Path, name: str, configs: Sequence[StylizeConfig]) -> None:
    """The checks `nst stylize` makes of its content before any work: its size at each config's,
    and the colour profile an output converted to it can take."""
    from nst.runtime.plan import check_sizes  # plan loads torch: only when a job is checked

    original = probe_image(path)
    for config in configs:
        check_sizes(original, resized_shape(original, long_side=config.size, width=config.width), name=repr(name))
        output_profile(config.output_profile, path, bit_depth=config.bit_depth)


def _json(data: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(finite(data), status_code=status, headers={"Cache-Control": "no-store", **(headers or {})})


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def _nst_error(request: Request, exc: Exception) -> Response:
    """A user's mistake, in the CLI's words: an image that cannot be read 415, any other 422."""
    return JSONResponse({"error": str(exc)}, status_code=415 if isinstance(exc, ImageError) else 422)
