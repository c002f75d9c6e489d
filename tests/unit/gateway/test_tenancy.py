"""Collections per tenant."""

from __future__ import annotations

import re

from services.gateway.tenancy import COLLECTION_PATTERN, Tenant


def test_keys_get_separate_collections() -> None:
    a, b = Tenant("a" * 16), Tenant("b" * 16)
    assert a.collection("docs") != b.collection("docs")
    assert a.client_name(a.collection("docs")) == "docs"
    assert b.client_name(a.collection("docs")) is None
    assert a.client_name("docs") is None  # an unscoped (keyless) collection is not a tenant's


def test_scoped_names_stay_valid_collection_names() -> None:
    longest = "x" * 48
    assert re.match(COLLECTION_PATTERN, longest)
    assert re.match(r"^[A-Za-z0-9_-]{1,64}$", Tenant("f" * 16).collection(longest))


def test_without_keys_names_are_unchanged() -> None:
    open_tenant = Tenant(None)
    assert open_tenant.collection("docs") == "docs"
    assert open_tenant.client_name("anything") == "anything"
