"""The native stack launcher behind `make up`: every service a local process on the loopback."""

from ancora.stack.services import Service, Stack, native_stack
from ancora.stack.supervisor import StackError, Supervisor

__all__ = ["Service", "Stack", "StackError", "Supervisor", "native_stack"]
