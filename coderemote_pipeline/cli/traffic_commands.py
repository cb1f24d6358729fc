"""`traffic ENV [--promote | --abort]`: the split of ENV's API requests and the live figures per version, and a
person's say over the shift in flight."""

from __future__ import annotations

import argparse

from coderemote_pipeline.cli.release_commands import default_person, one_line, person
from coderemote_pipeline.rules.env_names import ENV_HELP


def cmd_traffic(args: argparse.Namespace, settings_from) -> int:
    from coderemote_pipeline.ledger.instance import open_instance
    from coderemote_pipeline.rules.errors import UserError
    from coderemote_pipeline.usecases.traffic import control, split

    if not (args.promote or args.abort) and (args.reason is not None or args.by is not None):
        given = "--reason" if args.reason is not None else "--by"
        raise UserError(f"{given} goes with --promote or --abort (it is recorded with that request): add one, or "
                        f"leave {given} out to see the split")  # fmt: skip
    settings = settings_from(args)
    instance = open_instance(settings.state_dir)
    if args.promote or args.abort:
        action = "promote" if args.promote else "abort"
        state = control(instance, args.env, action, args.by or default_person(), args.reason or "")
        print(f"asked the shift of {state.release} in {args.env} to {action} (run {state.run_id[:8]}); "
              "it acts within about a second")  # fmt: skip
        return 0
    found = split(settings, instance, args.env)
    if found is None:
        print(f"{args.env}: nothing deployed yet")
        return 0
    print(f"{args.env} API requests (alias routing; the runtime holds {found.runtime_weights or '-'}):")
    for version, weight in sorted(found.weights.items(), key=lambda kv: -kv[1]):
        figures = found.figures.get(version)
        live = "no requests in the last minute"
        if figures and figures.requests:
            live = (f"{figures.requests} requests in the last minute, error rate {figures.error_rate:.1%}, "
                    f"p99 {figures.p99_ms:.0f} ms")  # fmt: skip
        print(f"  version {version} ({found.releases.get(version, '?')}): {weight}%  — {live}")
    state = found.shift
    if state is not None:
        # The last shift recorded is not always the one in flight: its run may have been killed part-way.
        what = f"{state.phase}, step {state.step + 1}"
        if found.shift_interrupted:
            what = (f"interrupted at step {state.step + 1} (its run is {found.shift_run}): the next deploy of "
                    f"{args.env} resumes it, or the run's settle takes the new version back")  # fmt: skip
        print(f"shift of {state.release} (run {state.run_id[:8]}, {found.shift_run}): {what}, new version at "
              f"{state.new_weight}% as last set")  # fmt: skip
    return 0


def add_parsers(sub) -> None:
    traffic = sub.add_parser("traffic", help="the split of ENV's API requests, live figures, and the shift in flight")
    traffic.add_argument("env", help=ENV_HELP)
    what = traffic.add_mutually_exclusive_group()
    what.add_argument("--promote", action="store_true", help="take the shift in flight to 100%% now")
    what.add_argument("--abort", action="store_true", help="take the new version back to 0%% now; the run fails")
    traffic.add_argument("--reason", type=one_line, help="why (recorded with the request)")
    traffic.add_argument("--by", type=person, help="who asks (default: $USER)")
    traffic.set_defaults(func=cmd_traffic)
