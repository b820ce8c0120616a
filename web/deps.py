"""FastAPI dependencies shared by the routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from dispatch.runtime import Runtime


def _runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


RT = Annotated[Runtime, Depends(_runtime)]
