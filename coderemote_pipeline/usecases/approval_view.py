"""The approval view: what waits (for a decision, or approved and held by the promotion gate) with its release
notes, and the latest decisions. Kept apart from approve.py so that `coderemote-pipeline approvals` reads the ledger
without loading the code location (definitions, jobs, every stage's module)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from coderemote_pipeline.ledger.approval_board import approval_board, partly_approved
from coderemote_pipeline.ledger.approvals import Decision, Hold, lapsed
from coderemote_pipeline.ledger.gate import gate_status
from coderemote_pipeline.ledger.live import recorded_live
from coderemote_pipeline.rules.environments import load_policies
from coderemote_pipeline.rules.errors import UserError
from coderemote_pipeline.rules.settings import Settings

if TYPE_CHECKING:
    import dagster as dg

    from coderemote_pipeline.actions.release_notes import ReleaseNotes


@dataclass(frozen=True)
class Waiting:
    hold: Hold
    gate: str  # the promotion gate's verdict on the held commit ("" when there is no gate)
    notes: ReleaseNotes | None = None  # what it changes against what the env serves (for a pending decision)
    approvals: str = ""  # approved by fewer than its env requires: who approved, how many more, from whom


def approval_view(
    settings: Settings, instance: dg.DagsterInstance, *, lapses: bool = True
) -> tuple[list[Waiting], list[tuple[Decision, str]]]:
    """What waits (for a decision, or approved and held by the gate) with its release notes, and the latest
    decisions, each with why it no longer stands for a new deploy ("" if it does, was superseded by a newer one
    listed, or `lapses` is off: `--pending` lists no decisions)."""
    policies = load_policies(settings.infra_dir)
    waiting, latest = approval_board(instance, policies)
    seen: set[tuple[str, str]] = set()
    decisions = []
    for decision in latest:
        newest = (decision.env, decision.release) not in seen
        seen.add((decision.env, decision.release))
        why = lapsed(instance, policies[decision.env], decision) if newest and lapses else ""
        decisions.append((decision, why))
    if not waiting:
        return [], decisions
    # Release notes read the app's git remote: loaded only when something waits to be described.
    from coderemote_pipeline.actions.release_notes import release_notes
    from coderemote_pipeline.resources.app_source import AppSource

    remote = AppSource(**settings.app_source_fields()).remote()
    previews: dict[str, list[str]] = {}
    found = []
    for hold in waiting:
        gate = gate_status(instance, policies[hold.env], hold.commit)
        live = recorded_live(instance, hold.env)
        notes = release_notes(remote, settings.app_layout, live.commit if live else None,
                              live.release if live else "", hold.commit, gate) if remote else None  # fmt: skip
        if notes is not None:
            if hold.env not in previews:
                previews[hold.env] = _preview(settings, policies[hold.env])
            notes = replace(notes, infra=previews[hold.env])
        found.append(Waiting(hold, gate, notes, approvals=partly_approved(instance, policies[hold.env], hold) or ""))
    return found, decisions


def _preview(settings: Settings, policy) -> list[str]:
    """What the env's infra_stack would change now (pulumi preview on aws, the emulator's plan locally)."""
    try:
        from coderemote_pipeline.resources.targets import resources_for  # boto3 and docker, only for a preview

        return resources_for(settings)["provisioner"].preview(policy.name, policy.stack)
    except UserError as exc:  # one line by design, its fix at the end: kept whole
        return [f"preview unavailable ({str(exc).splitlines()[0]})"]
    except Exception as exc:
        return [f"preview unavailable ({str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__})"]
