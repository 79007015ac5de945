"""``GET /``: the console's home, the pages open to the signed-in user."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from .auth import HUMAN_ROLES
from .guard import console_user
from .render import render
from .session import ConsoleUser

router = APIRouter(include_in_schema=False)

SignedIn = Annotated[ConsoleUser, Depends(console_user(*HUMAN_ROLES))]


@router.get("/")
async def home(request: Request, user: SignedIn) -> Response:
    return render(request, "home.html", user)


@router.get("/session/ping")
async def ping(user: SignedIn) -> Response:
    """Activity: the "stay signed in" button (the guard recorded it)."""
    return Response(status_code=204)
