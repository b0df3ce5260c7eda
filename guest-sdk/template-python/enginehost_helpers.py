"""What the enginehost guest SDK gives a Rust engine, for a Python one: errors,
an environment-variable set (EnvVars), a sandbox status with the contract's
rules for calls after the end (SandboxStatus), and byte-stream helpers."""

import asyncio
import re

import componentize_py_async_support
import componentize_py_runtime
from componentize_py_types import Err
import wit_world
from wit_world.imports import enginehost_engine_types as types


def malformed(message: str) -> Err:
    """A malformed-payload error: what is wrong and what would be right."""
    return Err(types.Error_MalformedPayload([message]))


def error(kind) -> Err:
    """A contract error without a value, e.g. error(types.Error_ResourceNotFound)."""
    return Err(kind())


def spawn(coroutine) -> None:
    """Runs `coroutine` in the background (work that outlives the call)."""
    componentize_py_async_support.spawn(coroutine)


def stream_of(data: bytes):
    """A byte stream that yields `data`, then ends."""
    tx, rx = wit_world.byte_stream()

    async def feed():
        with tx:
            await tx.write_all(data)

    spawn(feed())
    return rx


class EnvVars:
    """A builder's environment variables: a name outside `rule` is
    malformed-payload naming the rule, a name set twice a naming conflict."""

    def __init__(self, rule: str = r"^[a-zA-Z0-9_-]+$"):
        self.rule = rule
        self.vars: dict[str, str] = {}

    def set(self, name: str, value: str) -> None:
        if not re.fullmatch(self.rule, name):
            raise malformed(f"Environment variables name: '{name}' doesn't match: {self.rule}")
        if name in self.vars:
            raise error(types.Error_NamingConflict)
        self.vars[name] = value


class SandboxStatus:
    """A sandbox's resolution (the first one wins) and what a call after the end
    answers: abort is sandbox-terminated, kill answers how it ended, a new shell
    is sandbox-aborted or sandbox-terminated."""

    def __init__(self):
        self._done = asyncio.Event()
        self._result = None  # ("ok", value) or ("err", error)
        self.killed = False

    def resolve_ok(self, value) -> bool:
        return self._resolve(("ok", value))

    def resolve_err(self, err) -> bool:
        return self._resolve(("err", err))

    def _resolve(self, result) -> bool:
        if self._result is not None:
            return False
        self._result = result
        self._done.set()
        return True

    async def wait(self):
        await self._done.wait()
        kind, value = self._result
        if kind == "err":
            raise Err(value)
        return value

    def abort(self) -> None:
        if not self.resolve_err(types.Error_SandboxAborted()):
            raise error(types.Error_SandboxTerminated)

    def kill(self) -> bool:
        """True when the sandbox had ended (kill then answers how: raises its
        error, or returns); False after marking it killed."""
        if self._result is None:
            self.killed = True
            return False
        kind, value = self._result
        if kind == "err":
            raise Err(value)
        return True


# componentize-py 0.25.1 returns an async export's result (task.return) before it
# ends the borrows the export received, and the component model then traps
# ("borrow handles still remain at the end of the call"). The only such export
# is result-set.extract-folder (a borrow<file-handler>): it ends its borrow
# itself with `with handler:`, and the runtime is left none to end.
_task_return = componentize_py_runtime.call_task_return


def _task_return_borrows_ended(index: int, borrows: int, result) -> None:
    _task_return(index, 0, result)


componentize_py_runtime.call_task_return = _task_return_borrows_ended
