"""My data: `/mydata` sends the student everything the companion keeps about them, as a JSON file that holds
their portfolio page too, with a button for the portfolio on its own (the same as a page to read);
`/delete` records their request to have it deleted, which an administrator carries out
(`companion forget`). The school's `retention_days` says how long a student's data stays after
they leave the roster (`core/school/privacy.py` has the export, the forgetting and the sweep).

    delete ─yes─► a delete request is recorded ─► end
           └no──► nothing changes ─► end
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.domain.messages import Button, FilePart, Outbound
from core.engine.flow import Answers, Choice, Flow, Step, Turn
from core.engine.registry import Command, Feature
from core.features.plan import with_portfolio
from core.school import privacy

if TYPE_CHECKING:
    from core.engine.pipeline import Engine


def send_my_data(engine: "Engine", turn: Turn, _args: str) -> None:
    """Everything about the student, as a file in this chat (kept in the file store like any file sent)."""
    location = engine.settings.file_store
    data = with_portfolio(turn.tx, engine.registry, turn.person_id, turn.now,
                          privacy.export(turn.tx, engine.registry, turn.person_id, turn.now, location), location)
    ref = privacy.keep_export(turn.tx, engine.settings.file_store, turn.person_id, privacy.export_bytes(data),
                              privacy.export_name(turn.now), turn.now)
    rows = sum(len(found) for found in data["tables"].values())
    turn.tx.audit(turn.platform, "data_exported", turn.person_id, {"rows": rows}, turn.now)
    turn.replies.append(Outbound("mydata/sent", {"rows": rows, "files": len(data["files"])},
                                 buttons=(Button("plan.portfolio", "/portfolio"),), document=FilePart(ref)))


@dataclass
class DeleteAnswers(Answers):
    confirm: str | None = None  # delete or keep


def record_request(turn: Turn, choice: str) -> None:
    """A yes records the request (once); a no changes nothing."""
    if choice != "delete":
        turn.say("mydata/kept")
    elif privacy.request_delete(turn.tx, turn.person_id, turn.platform, turn.now):
        turn.say("mydata/delete_recorded")
    else:
        turn.say("mydata/delete_waiting")


DELETE_FLOW = Flow("delete", answers=DeleteAnswers, steps=(
    Step("confirm", ask="mydata/ask_delete",
         expect=Choice(("delete", "keep"), labels={"delete": "mydata.delete", "keep": "mydata.keep"}),
         save="confirm", effect=record_request),
))

FEATURE = Feature(
    "mydata",
    flows=(DELETE_FLOW,),
    commands=(Command("mydata", run=send_my_data, when_stopped=True), Command("delete", flow="delete", when_stopped=True)),
    settings=(privacy.RETENTION,),
    person_tables=("deleterequest",),
)
