"""The two kinds of error a user can act on. The CLI prints either as one line, never as a traceback."""


class UserError(Exception):
    """Something the user can fix (a name, a file, a refused release); the message says what and how."""


class InfrastructureError(UserError):
    """A part of the target (the emulator, the registry, a Docker engine, AWS) that does not answer."""


class DeployRefused(UserError, RuntimeError):
    """A release this environment may not take now (its policy, the gate, a window, an approval): says why."""
