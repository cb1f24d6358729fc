"""The local target's stand-ins for AWS: real processes on this machine.

`LocalStack(state_dir).up()` starts the AWS emulator (moto), the image registry and, when no engine answers,
a Docker engine of our own, imports the Python base image, and returns a `StackInfo` that the local resources
read back with `load_stack_info(state_dir)` and verify with `check_parts(info)`.
"""

from coderemote_pipeline.local_stack.base_image import BASE_IMAGE, default_cache_dir
from coderemote_pipeline.local_stack.checks import check_parts
from coderemote_pipeline.local_stack.dockerd import STACK_LABEL, docker_client
from coderemote_pipeline.local_stack.errors import (
    BaseImageError,
    DockerEngineDown,
    EmulatorDown,
    LocalStackError,
    LocalStackNotRunning,
    PartDidNotStart,
    RegistryDown,
)
from coderemote_pipeline.local_stack.lifecycle import LocalStack
from coderemote_pipeline.local_stack.moto_server import ACCOUNT_ID, DUMMY_CREDENTIALS, REGION
from coderemote_pipeline.local_stack.stack_info import StackInfo, load_stack_info
from coderemote_pipeline.rules.env_names import ENVIRONMENTS

__all__ = [
    "ACCOUNT_ID",
    "BASE_IMAGE",
    "DUMMY_CREDENTIALS",
    "ENVIRONMENTS",
    "REGION",
    "STACK_LABEL",
    "BaseImageError",
    "DockerEngineDown",
    "EmulatorDown",
    "LocalStack",
    "LocalStackError",
    "LocalStackNotRunning",
    "PartDidNotStart",
    "RegistryDown",
    "StackInfo",
    "check_parts",
    "default_cache_dir",
    "docker_client",
    "load_stack_info",
]
