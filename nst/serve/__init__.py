"""`nst serve`, a local web app to stylize, watch a run converge, compare and download results,
and the read-only live view of `nst stylize --preview`. Needs the `serve` extra (starlette, uvicorn)."""
