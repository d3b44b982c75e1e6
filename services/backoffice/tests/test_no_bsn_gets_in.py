"""No citizen service number gets into the back office, in any format: staff text is redacted,
text from the wire is redacted again on the way in, and a refused forward does not repeat what
was sent."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from backoffice.store import InboxStore, items_table, outbox, timeline_table
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

# The formats that used to get through, with the digits that must not come out again.
WRITTEN: list[tuple[str, str]] = [
    ("BSN.123456782", "123456782"),
    ("BSN nr.111222333", "111222333"),
    ("klant nr.999993653", "999993653"),
    ("https://x.nl/personen/123456782/1", "123456782"),
    ("dossier-111222333", "111222333"),
    ("abc123456782@x.nl", "123456782"),
    ("123  456  782", "123456782"),
    ("123\u2013456\u2013782", "123456782"),
    ("123/456/782", "123456782"),
    ("123_456_782", "123456782"),
    ("123,456,782", "123456782"),
    ("1234\u200b56782", "123456782"),
    ("123\u00a0456\u00a0782", "123456782"),
    ("123\u202f456\u202f782", "123456782"),
    ("12345611", "12345611"),
    ("BSN 12345678", "12345678"),
]
ALL_FORMATS = " ; ".join(written for written, _ in WRITTEN)
_SEPARATORS = re.compile(r"[\s.,/_\-\u2010-\u2015\u200b-\u200f\u2060\ufeff\u00ad]")


def leaked(text: str) -> list[str]:
    squeezed = _SEPARATORS.sub("", text)
    return [digits for _, digits in WRITTEN if digits in squeezed]


def body(response: TestResponse) -> Any:
    return response.get_json()


def stored_text(store: InboxStore) -> str:
    with store.engine.connect() as connection:
        rows = [
            *connection.execute(select(items_table)).all(),
            *connection.execute(select(timeline_table)).all(),
            *connection.execute(select(outbox)).all(),
        ]
    return json.dumps([[str(v) for v in row] for row in rows], ensure_ascii=False)


def act(client: FlaskClient, token: str, item: str, action: str, payload: Any = None) -> Any:
    return client.post(
        f"/api/v1/items/{item}/{action}",
        headers={"Authorization": f"Bearer {token}"},
        json=payload,
    )


@pytest.mark.parametrize(
    ("action", "field"),
    [("answer", "text"), ("clarification-request", "text"), ("forward", "reason")],
)
def test_staff_text_is_redacted_in_every_format(
    client: FlaskClient,
    store: InboxStore,
    staff_token: str,
    item_id: str,
    action: str,
    field: str,
) -> None:
    act(client, staff_token, item_id, "claim")
    payload = {field: f"Zie {ALL_FORMATS}."}
    if action == "forward":
        payload["to_department"] = "belastingen"

    response = act(client, staff_token, item_id, action, payload)

    assert response.status_code == 200, body(response)
    assert response.get_data(as_text=True).count("[BSN]") >= len(WRITTEN) or action == "forward"
    assert leaked(response.get_data(as_text=True)) == []
    assert leaked(stored_text(store)) == []


def test_a_forward_to_an_unknown_department_does_not_repeat_it(
    client: FlaskClient, store: InboxStore, staff_token: str, item_id: str
) -> None:
    act(client, staff_token, item_id, "claim")

    response = act(
        client,
        staff_token,
        item_id,
        "forward",
        {"to_department": "BSN 123456782", "reason": "Hoort bij de afdeling 111222333."},
    )

    assert response.status_code == 400
    assert list(body(response)["errors"]) == ["to_department"]
    assert leaked(response.get_data(as_text=True)) == []
    assert leaked(stored_text(store)) == []


def test_a_forward_on_the_page_to_an_unknown_department_does_not_repeat_it(
    client: FlaskClient, staff_token: str, item_id: str
) -> None:
    page = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert csrf
    client.post("/login", data={"token": staff_token, "csrf_token": csrf.group(1)})
    page = client.get(f"/items/{item_id}").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    client.post(f"/items/{item_id}/claim", data={"csrf_token": token.group(1)})

    shown = client.post(
        f"/items/{item_id}/doorsturen",
        data={"csrf_token": token.group(1), "afdeling": "123456782", "reden": "niet van ons"},
        follow_redirects=True,
    )

    assert "Doorsturen lukt niet" in shown.get_data(as_text=True)
    assert leaked(shown.get_data(as_text=True)) == []


def test_text_from_the_wire_is_redacted_on_the_way_in(
    client: FlaskClient,
    store: InboxStore,
    staff_token: str,
    deliver: Callable[..., None],
    make: Any,
) -> None:
    # The intake redacts before it publishes; the back office does not rely on it.
    request_id = "0b0e6a4e-3c1b-4c8e-9d59-3f6f8c1d2e01"
    deliver(
        make.submitted(request_id, question=f"Vraag: {ALL_FORMATS}"),
        make.routed(request_id),
    )
    act(client, staff_token, request_id, "claim")
    act(client, staff_token, request_id, "clarification-request", {"text": "Welk nummer?"})
    deliver(make.agent_event("request.clarified", request_id, text=ALL_FORMATS))
    act(client, staff_token, request_id, "answer", {"text": "Het is geregeld."})
    deliver(
        make.agent_event("request.rated", request_id, score=1, thanks=False, comment=ALL_FORMATS),
        make.agent_event("request.reopened", request_id, reason=ALL_FORMATS),
    )

    seen = client.get(
        f"/api/v1/items/{request_id}", headers={"Authorization": f"Bearer {staff_token}"}
    )

    assert seen.status_code == 200
    assert "[BSN]" in body(seen)["question"]
    assert leaked(seen.get_data(as_text=True)) == []
    assert leaked(stored_text(store)) == []
