"""Validate Nexthink requests and responses against the reference's OpenAPI document.

``tests/fixtures/workflows-openapi.json`` is a copy of ``shared/nexthink/workflows-openapi.json``.

The document is the reference's five endpoints merged into one; its server URL is a placeholder
(``https://instance.api.region.nexthink.cloud``), so every request is validated as if it were
sent there, whatever host it really went to.
"""

from __future__ import annotations

import json
import warnings
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse

SPEC_PATH = Path(__file__).resolve().parents[1] / "fixtures" / "workflows-openapi.json"
HOST = "https://instance.api.region.nexthink.cloud"


@cache
def spec() -> OpenAPI:
    return OpenAPI.from_dict(json.loads(SPEC_PATH.read_text()))


def _request(
    method: str,
    path: str,
    *,
    query: str = "",
    headers: dict[str, str] | None = None,
    body: Any = None,
) -> MockRequest:
    data = None if body is None else (body if isinstance(body, (str, bytes)) else json.dumps(body))
    return MockRequest(
        HOST,
        method.lower(),
        path,
        args=dict(parse_qsl(query, keep_blank_values=True)),
        headers=headers or {},
        data=data,
        content_type="application/json",
    )


def validate_request(
    method: str,
    path: str,
    *,
    query: str = "",
    headers: dict[str, str] | None = None,
    body: Any = None,
) -> None:
    """Raise if this request breaks the reference (path, query, headers, body)."""
    with warnings.catch_warnings():
        # openapi-core does not implement the oauth2 scheme; the Authorization header is checked
        # as a required header parameter instead.
        warnings.filterwarnings("ignore", "Unsupported scheme type", UserWarning)
        spec().validate_request(_request(method, path, query=query, headers=headers, body=body))


def validate_response(
    method: str,
    path: str,
    status: int,
    body: Any,
    *,
    query: str = "",
    headers: dict[str, str] | None = None,
) -> None:
    """Raise if ``status`` and ``body`` are not what the reference documents for this request."""
    request = _request(method, path, query=query, headers=headers)
    data = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    response = MockResponse(data, status_code=status, content_type="application/json")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Unsupported scheme type", UserWarning)
        spec().validate_response(request, response)
