"""The local stack as a resource: where the emulator, registry and Docker engine of this state dir answer."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from coderemote_pipeline.local_stack import StackInfo, load_stack_info


class LocalStackResource(dg.ConfigurableResource):
    """Reads the running local stack's addresses at run time (never at definitions load)."""

    state_dir: str

    def info(self) -> StackInfo:
        return load_stack_info(Path(self.state_dir))
