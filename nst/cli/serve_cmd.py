"""`nst serve`: the local web app (docs/SERVE.md). Needs the `serve` extra."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import click

from nst.cli import INTERRUPTED
from nst.cli.options import DEVICE
from nst.cli.stylize_options import ModelSource, model_options
from nst.errors import ConfigError, OutputError

EXTRA = ("starlette", "uvicorn", "multipart")  # python-multipart's module


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Any other than the loopback interface needs the token the "
              "server prints (in the URL).")  # fmt: skip
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True, help="0: any free port.")
@model_options
@click.option("--outdir", type=click.Path(path_type=Path, file_okay=False), default=Path("nst-gallery"),
              show_default=True, help="The gallery: results, their manifest and the uploads (kept across restarts).")  # fmt: skip
@click.option("--device", type=DEVICE, default="auto", show_default=True,
              help="auto, cpu, cuda or cuda:N. One job runs at a time on the CPU, one per GPU on CUDA.")  # fmt: skip
@click.option("--max-upload-mb", type=click.IntRange(1, 1000), default=100, show_default=True,
              help="Largest request (all its images together); larger ones get 413.")  # fmt: skip
@click.option("--open", "open_browser", is_flag=True, help="Open the page in the browser.")
def serve_cmd(
    host: str, port: int, source: ModelSource, outdir: Path, device: str, max_upload_mb: int, open_browser: bool
) -> None:
    """Serve the web app: upload a photo and styles, watch the image form, stop it, compare and
    download the results. Ctrl-C stops it; finished results stay in --outdir.

    \b
    nst serve --open
    nst serve --host 0.0.0.0 --port 8000 -m vgg19-nst.onnx     (prints a URL with a token)
    """
    require_extra()
    from nst.batch.driver import local_devices
    from nst.cli.stylize_cmd import choose_backends
    from nst.runtime.config import StylizeConfig
    from nst.runtime.stylize import Stylizer
    from nst.serve.app import Settings, create_app
    from nst.serve.gallery import Gallery
    from nst.serve.runner import JobQueue
    from nst.serve.security import LOOPBACK, Access, is_loopback, new_token
    from nst.serve.server import Server, bind, url

    if not outdir.exists() and not outdir.parent.is_dir():  # a typo must not grow a tree of folders
        raise OutputError(f"folder {outdir.parent} does not exist; create it first, or give another --outdir")
    gallery = Gallery(outdir)
    sock = bind(host, port)  # a taken port is one line before the model loads
    model_path = source.resolve(None)
    choose_backends(device)
    # The network loads now, once per device: a bad model fails before the server answers anything.
    sessions = [Stylizer(model_path, device=d, config=StylizeConfig(device=d)) for d in local_devices(device)]
    queue = JobQueue(sessions, gallery)
    token = None if is_loopback(host) else new_token()
    access = Access(token=token, hosts=(*LOOPBACK, host))  # 127.0.0.2 is loopback too
    address = url(host, sock.getsockname()[1], token)
    info = {"mode": "serve", "model": model_path.name, "devices": [str(s.device) for s in sessions]}
    app = create_app(queue, queue=queue, info=info, settings=Settings(access=access, max_upload=max_upload_mb * 2**20))

    def ready() -> None:
        click.echo(f"nst serve: {address}  ({model_path.name} on {', '.join(info['devices'])}; Ctrl-C stops)")
        if open_browser:
            import webbrowser

            webbrowser.open(address)

    def force() -> None:  # a second Ctrl-C: not even the running job's iteration is waited for
        click.echo(f"stopped without waiting for the running job; the results are in {outdir}", err=True)
        sys.stderr.flush()
        os._exit(INTERRUPTED)  # finished results are on disk already (atomic writes, synced manifest)

    try:
        Server(app, on_ready=ready, on_stop=queue.stop, on_force=force).run(sockets=[sock])
    finally:
        click.echo(f"stopped; the results are in {outdir}", err=True)


def require_extra() -> None:
    """One line naming the extra when starlette, uvicorn or python-multipart is missing."""
    missing = [name for name in EXTRA if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(f"nst serve needs the serve extra ({', '.join(missing)} missing): pip install 'nst[serve]'")
