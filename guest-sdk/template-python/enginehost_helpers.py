"""What the enginehost guest SDK gives a Rust engine, for a Python one: errors,
an environment-variable set (EnvVars), a sandbox and a shell status with the
contract's rules for calls after the end (SandboxStatus, ShellStatus), commands
run through the process
capability (Command, run_to_end), the task's files through the files capability
(open_file, extract_folder), and byte-stream helpers."""

import re

import componentize_py_async_support
import componentize_py_runtime
from componentize_py_types import Err
import wit_world
from wit_world.imports import caps, files, process
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
        self._end = _Signal()  # ("ok", value) or ("err", error)
        self.killed = False

    def resolve_ok(self, value) -> bool:
        return self._end.set(("ok", value))

    def resolve_err(self, err) -> bool:
        return self._end.set(("err", err))

    @property
    def resolved(self) -> bool:
        return self._end.is_set

    async def wait(self):
        """wait-for-result's answer, once the sandbox ended (safe to await from
        any call into the engine)."""
        kind, value = await self._end.wait()
        if kind == "err":
            raise Err(value)
        return value

    def check_running(self) -> None:
        """What new-shell answers once the sandbox ended: sandbox-aborted after
        an abort, else sandbox-terminated."""
        if not self._end.is_set:
            return
        kind, value = self._end.value
        if kind == "err" and isinstance(value, types.Error_SandboxAborted):
            raise error(types.Error_SandboxAborted)
        raise error(types.Error_SandboxTerminated)

    def abort(self) -> None:
        if not self.resolve_err(types.Error_SandboxAborted()):
            raise error(types.Error_SandboxTerminated)

    def kill(self) -> bool:
        """True when the sandbox had ended (kill then answers how: raises its
        error, or returns); False after marking it killed."""
        if not self._end.is_set:
            self.killed = True
            return False
        kind, value = self._end.value
        if kind == "err":
            raise Err(value)
        return True


class _Signal:
    """A value set once that any call into the engine may wait for: each waiter
    reads a stream of its own, whose writer `set` drops (componentize-py 0.25.1's
    loop lets a call wait only on the component model's waitables)."""

    def __init__(self):
        self.value = None
        self.is_set = False
        self._waiters = []

    def set(self, value) -> bool:
        if self.is_set:
            return False
        self.value, self.is_set = value, True
        for writer in self._waiters:
            writer.__exit__(None, None, None)
        self._waiters.clear()
        return True

    async def wait(self):
        if not self.is_set:
            writer, reader = wit_world.byte_stream()
            self._waiters.append(writer)
            with reader:
                await reader.read(1)
        return self.value


class ShellStatus:
    """A shell's status: a terminal or not, aborted or not, its success once it
    exited; set-size, abort and wait answer as the contract says (the Rust SDK's
    ShellStatus)."""

    def __init__(self, tty: bool):
        self.tty = tty
        self.aborted = False
        self._exit = _Signal()

    def exited(self, success: bool) -> None:
        """Records that the shell exited (the first call counts)."""
        self._exit.set(success)

    def check_resize(self) -> None:
        """set-size's errors: feature-not-supported without a terminal, then
        shell-aborted, then shell-terminated."""
        if not self.tty:
            raise error(types.Error_FeatureNotSupported)
        if self.aborted:
            raise error(types.Error_ShellAborted)
        if self._exit.is_set:
            raise error(types.Error_ShellTerminated)

    def begin_abort(self) -> None:
        """The start of abort: shell-terminated once it exited, else marks it
        aborted (the caller then ends it)."""
        if self._exit.is_set:
            raise error(types.Error_ShellTerminated)
        self.aborted = True

    async def wait(self) -> bool:
        """wait: the shell's success once it exited, or shell-aborted."""
        success = await self._exit.wait()
        if self.aborted:
            raise error(types.Error_ShellAborted)
        return success


def cap_message(err) -> str:
    """The text of a capability error (a denial names the config key to change)."""
    value = err.value if isinstance(err, Err) else err
    if isinstance(value, caps.CapError_Denied):
        return value.value.message
    if isinstance(value, caps.CapError_TaskEnded):
        return "the task has ended: its processes, users and files are gone"
    if isinstance(value, caps.CapError_NotFound):
        return f"not found: {value.value}"
    if isinstance(value, caps.CapError_Invalid):
        return f"invalid argument: {value.value}"
    return f"the host refused: {value.value}"


def internal(err) -> Err:
    """A capability failure as the operator's business: a non-fatal internal
    error carrying its message (what `?` does in the Rust SDK)."""
    return Err(types.Error_NonFatalInternalError(cap_message(err)))


class Command:
    """A process to start through the process capability (granted in
    [plugins.NAME.process]): by default in the task's home (`home` in the sandbox
    directory), stdout and stderr together into the task log, copied by the host.

        proc = await Command(["make", "test"]).env(vars).spawn(context)
        status = await run_to_end(proc)
    """

    def __init__(self, argv: list):
        self.argv = list(argv)
        self.vars: list = []
        self.directory = "home"
        self.stdin = process.Input_Null()
        self.stdout = process.Output_TaskLog("")
        self.stderr = process.Output_Stdout()
        self.terminal = None

    def env(self, variables: dict) -> "Command":
        self.vars.extend(variables.items())
        return self

    def cwd(self, directory: str) -> "Command":
        """The working directory, relative to the task's sandbox directory."""
        self.directory = directory
        return self

    def stdin_bytes(self, data: bytes) -> "Command":
        self.stdin = process.Input_Bytes(stream_of(data))
        return self

    def stdin_stream(self, reader) -> "Command":
        """Standard input from a byte stream (a shell's `stdin`)."""
        self.stdin = process.Input_Bytes(reader)
        return self

    def pty(self, columns: int, rows: int) -> "Command":
        """A pseudo-terminal of this size (granted by [plugins.NAME.process] pty)."""
        self.terminal = process.Size(columns=columns, rows=rows)
        return self

    def output(self, stdout, stderr=None) -> "Command":
        """Where stdout and stderr go (process.Output_*); stderr follows stdout
        by default."""
        self.stdout = stdout
        self.stderr = stderr if stderr is not None else process.Output_Stdout()
        return self

    async def spawn(self, context, user=None):
        """Starts it in the task of `context`, as `user` (a task user) or the
        worker. A command that cannot start (not found, not allowed as written)
        is the task author's: malformed-payload; a denial is the operator's: a
        non-fatal internal error naming the grant."""
        record = process.Command(
            argv=self.argv, env=self.vars, cwd=self.directory,
            stdin=self.stdin, stdout=self.stdout, stderr=self.stderr, pty=self.terminal,
        )
        try:
            return await process.spawn(context, record, user)
        except Err as e:
            if isinstance(e.value, (caps.CapError_NotFound, caps.CapError_Invalid)):
                raise malformed(f"Unable to start specified command: {cap_message(e)}")
            raise internal(e)


async def run_to_end(proc, context=None):
    """Waits for `proc`, then ends what it left running and waits for its output
    to reach the task log. With `context`, records the exit code for the worker's
    exit-status rules (contract 0.1.3). Returns the exit status."""
    status = await proc.wait()
    if context is not None and isinstance(status, process.ExitStatus_Code):
        context.set_exit_code(status.value)
    try:
        await proc.kill_tree(0)
    except Err:
        pass
    await proc.drained()
    return status


def succeeded(status) -> bool:
    """Whether an exit status is exit code 0."""
    return isinstance(status, process.ExitStatus_Code) and status.value == 0


async def open_file(context, root: str, path: str):
    """extract-file from the task's files: the bytes of `path` under `root` (in
    the sandbox directory), read by the host; a missing file is
    resource-not-found."""
    try:
        return await files.open_file(context, root, path)
    except Err as e:
        if isinstance(e.value, caps.CapError_NotFound):
            raise error(types.Error_ResourceNotFound)
        raise internal(e)


async def extract_folder(context, root: str, folder: str, handler) -> None:
    """extract-folder from the task's files: every regular file under `folder`
    (relative to `root`) to `handler`, one at a time; a missing folder is
    resource-not-found, a handler error handler-interrupt. Ends the handler's
    borrow before returning (see the componentize-py note below)."""
    with handler:
        folder = folder.strip("/")
        try:
            found = await files.list_files(context, root, folder)
        except Err as e:
            if isinstance(e.value, caps.CapError_NotFound):
                raise error(types.Error_ResourceNotFound)
            raise internal(e)
        for rel in found:
            full = f"{folder}/{rel}" if folder else rel
            try:
                data = await files.open_file(context, root, full)
            except Err:
                continue  # gone or unreadable meanwhile: skipped, as in the Rust SDK
            try:
                await handler.handle_file(rel, data)
            except Err:
                raise error(types.Error_HandlerInterrupt)


# componentize-py 0.25.1 returns an async export's result (task.return) before it
# ends the borrows the export received, and the component model then traps
# ("borrow handles still remain at the end of the call"). The only such export
# is result-set.extract-folder (a borrow<file-handler>): it ends its borrow
# itself with `with handler:`, and the runtime is left none to end.
_task_return = componentize_py_runtime.call_task_return


def _task_return_borrows_ended(index: int, borrows: int, result) -> None:
    _task_return(index, 0, result)


componentize_py_runtime.call_task_return = _task_return_borrows_ended
