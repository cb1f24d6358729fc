"""Errors of the local stack, one class per part so callers can tell which stand-in is missing.

Every message names the part, its address and the command that fixes it: these errors surface in Dagster run
logs and the CLI, where the reader did not start the stack themselves.
"""

from coderemote_pipeline.rules.errors import InfrastructureError, Transient

UP_COMMAND = "coderemote-pipeline local up"


class LocalStackError(InfrastructureError):
    """Anything that keeps the local stand-ins for AWS from running."""


class LocalStackNotRunning(LocalStackError):
    """No stack has been brought up for this state dir (or it was brought down)."""


class PartDidNotStart(LocalStackError):
    """A server process exited or never answered while the stack was coming up."""


class BaseImageError(LocalStackError):
    """The local Python base image could not be built or imported."""


class EmulatorDown(LocalStackError, Transient):
    """The AWS API emulator (moto) does not answer."""


class RegistryDown(LocalStackError, Transient):
    """The image registry (docker-registry) does not answer."""


class DockerEngineDown(LocalStackError, Transient):
    """No Docker engine answers at the recorded address."""


class EdgeDown(LocalStackError):
    """The API edge (haproxy) or the site edge (varnish) does not answer."""
