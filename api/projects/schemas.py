"""Project bodies: ``/docker/projects/``; a project groups releases."""

from __future__ import annotations

from typing import Annotated

from api.bodies import TIMESTAMP, RequestBody, ResponseBody, doc
from api.fields import Name, rule, string
from api.limits import DESCRIPTION_MAX


class ProjectInput(RequestBody):
    name: Annotated[Name, doc("Unique in the account.")]
    description: Annotated[str, rule(string(max_length=DESCRIPTION_MAX, allow_blank=True))] = ""


class Project(ResponseBody):
    id: Annotated[int, doc(readOnly=True)]
    name: str
    description: str
    created: Annotated[str, TIMESTAMP, doc(format="date-time", readOnly=True)]
