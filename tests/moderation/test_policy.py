"""The post policy table, unit by unit (pure core)."""

from __future__ import annotations

import dataclasses

import pytest

from listserv.config import Config
from listserv.moderation.policy import Action, Facts, decide

PERSON = Facts(sender="anna@example.org", is_member=True, is_moderator=False,
               dkim_aligned_moderator=False, list_addressed=True, has_own_list_id=False,
               from_own_address=False, automatic=None)


def facts(**changes: object) -> Facts:
    return dataclasses.replace(PERSON, **changes)


@pytest.mark.parametrize(
    ("policy", "member", "action", "rule"),
    [
        ("moderate_all", True, Action.HOLD, "moderate_all"),
        ("moderate_all", False, Action.HOLD, "moderate_all"),
        ("moderate_non_members", True, Action.ACCEPT, "moderate_non_members"),
        ("moderate_non_members", False, Action.HOLD, "moderate_non_members"),
        ("members_only", True, Action.ACCEPT, "members_only"),
        ("members_only", False, Action.REJECT, "members_only"),
        ("open", False, Action.ACCEPT, "open"),
    ],
)
def test_post_policies(cfg: Config, policy: str, member: bool, action: Action, rule: str) -> None:
    mlist = dataclasses.replace(cfg.lists[0], post_policy=policy)
    decision = decide(facts(is_member=member), mlist)
    assert (decision.action, decision.rule) == (action, rule)


def test_loop_wins_over_everything(cfg: Config) -> None:
    mlist = dataclasses.replace(cfg.lists[0], post_policy="open")
    d = decide(facts(has_own_list_id=True, is_moderator=True, dkim_aligned_moderator=True), mlist)
    assert (d.action, d.rule) == (Action.DISCARD, "loop")


def test_own_address_and_automatic_are_discarded(cfg: Config) -> None:
    assert decide(facts(from_own_address=True), cfg.lists[0]).action is Action.DISCARD
    d = decide(facts(automatic="Auto-Submitted: auto-replied"), cfg.lists[0])
    assert (d.action, d.rule) == (Action.DISCARD, "automatic")


def test_bcc_only_is_held_even_on_an_open_list(cfg: Config) -> None:
    mlist = dataclasses.replace(cfg.lists[0], post_policy="open")
    d = decide(facts(list_addressed=False), mlist)
    assert (d.action, d.rule) == (Action.HOLD, "not_addressed")


def test_a_verified_moderator_passes_moderate_all(cfg: Config) -> None:
    d = decide(facts(is_moderator=True, dkim_aligned_moderator=True), cfg.lists[0])
    assert (d.action, d.rule) == (Action.ACCEPT, "moderator_verified")
    # Without the signature the coordinator's post is held like any other.
    d = decide(facts(is_moderator=True), cfg.lists[0])
    assert d.action is Action.HOLD
