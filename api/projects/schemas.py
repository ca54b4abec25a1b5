"""Project bodies: ``/docker/projects/``; a project groups releases."""

from __future__ import annotations

from typing import Annotated

from api.bodies import TIMESTAMP, RequestBody, ResponseBody, doc, rule
from api.validation import ANY_TEXT, NON_BLANK, string


class ProjectInput(RequestBody):
    name: Annotated[
        str, rule(string(max_length=100)), doc("Unique in the account.", maxLength=100, **NON_BLANK)
    ]
    description: Annotated[
        str, rule(string(max_length=10000, allow_blank=True)), doc(maxLength=10000, **ANY_TEXT)
    ] = ""


class Project(ResponseBody):
    id: Annotated[int, doc(readOnly=True)]
    name: str
    description: str
    created: Annotated[str, TIMESTAMP, doc(format="date-time", readOnly=True)]
