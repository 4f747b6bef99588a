"""Field selectors are written as the API server reads them: separators in values escaped."""

from jitaccess.api import wire


def test_fields_are_joined_with_commas() -> None:
    selector = wire.field_selector({"spec.requester": "alice@example.com", "spec.breakGlass": "true"})
    assert selector == "spec.requester=alice@example.com,spec.breakGlass=true"


def test_a_value_cannot_add_a_term_of_its_own() -> None:
    # A username holding ",spec.breakGlass=false" must stay one value, not become a second condition.
    selector = wire.field_selector({"spec.requester": r"a,spec.breakGlass=false\x"})
    assert selector == r"spec.requester=a\,spec.breakGlass\=false\\x"


def test_an_object_is_selected_as_the_api_server_compares_the_fields_text() -> None:
    request = {"spec": {"requester": "alice@example.com", "breakGlass": True, "duration": 3}, "status": {}}
    assert wire.selected_by(request, {"spec.requester": "alice@example.com", "spec.breakGlass": "true"})
    assert wire.selected_by(request, {"spec.duration": "3"}) and wire.selected_by(request, {})
    assert not wire.selected_by(request, {"spec.requester": "alice@example.com", "spec.breakGlass": "false"})
    assert not wire.selected_by(request, {"spec.requester": "Alice@example.com"})
    assert not wire.selected_by(request, {"status.groupId": "None"}), "no field, no value"
    assert not wire.selected_by(request, {"spec": "{}"})
