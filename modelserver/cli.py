"""``jetfleet serve-model``: the process inside each per-model container."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import typer

from jetfleet.errors import ConfigError

LOG_LEVELS = ("debug", "info", "warning", "error")


def serve_model(
    model_dir: Path = typer.Option(..., "--model-dir", help="The version directory: <models_dir>/NAME/VERSION"),
    name: str = typer.Option(..., "--name", help="Model name; must match model.json"),
    version: str = typer.Option(..., "--version", help="Model version (a positive integer); must match model.json"),
    port: int = typer.Option(..., "--port", min=1, max=65535, help="HTTP port (KServe v2 and /metrics)"),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on"),
    runtime: str = typer.Option("auto", "--runtime", help="ONNX models: auto (TensorRT when present, "
                                "else ONNX Runtime), tensorrt, onnxruntime"),
    precision: str = typer.Option("fp16", "--precision", help="TensorRT engine precision: fp16 or fp32"),
    engine_cache: Path | None = typer.Option(None, "--engine-cache", help="TensorRT engine cache [MODEL_DIR/engines]"),
    max_batch: int = typer.Option(8, "--max-batch", min=1, help="Largest batch a TensorRT engine built here accepts"),
    log_level: str = typer.Option("info", "--log-level", help="debug, info, warning, error"),
) -> None:
    """Serve one model version over KServe v2 / Open Inference Protocol HTTP (what each model container runs)."""
    from jetfleet.modelfiles.layout import NAME_PATTERN, VERSION_PATTERN
    from jetfleet.modelserver.engine_cache import PRECISIONS
    from jetfleet.modelserver.host import ServeSettings
    from jetfleet.modelserver.selection import RUNTIME_REQUESTS
    from jetfleet.modelserver.serve import run_server

    _check(re.fullmatch(NAME_PATTERN, name) is not None, "name", f"must match {NAME_PATTERN}")
    _check(re.fullmatch(VERSION_PATTERN, version) is not None, "version", "must be a positive integer")
    _check(runtime in RUNTIME_REQUESTS, "runtime", f"must be one of {', '.join(RUNTIME_REQUESTS)}")
    _check(precision in PRECISIONS, "precision", f"must be one of {', '.join(PRECISIONS)}")
    _check(log_level in LOG_LEVELS, "log-level", f"must be one of {', '.join(LOG_LEVELS)}")
    _check(model_dir.is_dir(), "model-dir", f"{model_dir} is not a directory")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ banner is noise in a server log
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = ServeSettings(model_dir=model_dir, name=name, version=version, port=port, host=host,
                             runtime=runtime, precision=precision,  # type: ignore[arg-type]
                             engine_cache_dir=engine_cache, max_batch=max_batch)
    raise typer.Exit(run_server(settings, log_level))


def _check(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise ConfigError(message, key=f"--{key}")


def register(app: typer.Typer) -> None:
    app.command("serve-model")(serve_model)


__all__ = ["register"]
