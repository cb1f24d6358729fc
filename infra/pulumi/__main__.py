"""Pulumi entry point. The stack name is the environment (dev, staging, prod)."""

import pulumi
from program import code_remote_stack
from stack_settings import load_settings

code_remote_stack(pulumi.get_stack(), load_settings(pulumi.Config()))
