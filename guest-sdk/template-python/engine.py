"""The engine's resources (componentize-py finds them in the module named after
the exported interface, `engine`): builder, sandbox, result set. Shells and
volumes answer feature-not-supported."""

from componentize_py_types import Err
from wit_world.exports import engine
from wit_world.imports import enginehost_engine_types as types
from wit_world.imports import host, monotonic_clock

from enginehost_helpers import EnvVars, SandboxStatus, error, spawn, stream_of


class SandboxBuilder(engine.SandboxBuilder):
    def __init__(self, prefix: str, context: host.TaskContext, payload: dict):
        self.prefix = prefix
        self.context = context
        self.payload = payload
        self.env = EnvVars(r"^[a-zA-Z0-9_]+$")
        self.started = False

    async def attach_volume(self, mountpoint, volume, read_only):
        raise error(types.Error_FeatureNotSupported)

    async def attach_proxy(self, name, handler):
        raise error(types.Error_FeatureNotSupported)

    async def set_environment_variable(self, name: str, value: str) -> None:
        self.env.set(name, value)

    async def start(self) -> "Sandbox":
        if self.started:
            raise Err(types.Error_ContractViolation("start was called twice"))
        self.started = True
        sandbox = Sandbox(self.context, self.payload)
        spawn(sandbox.run(self.prefix, dict(self.env.vars)))
        return sandbox

    async def discard(self) -> None:
        pass

    @classmethod
    def release(cls, this) -> None:
        pass


class Sandbox(engine.Sandbox):
    def __init__(self, context: host.TaskContext, payload: dict):
        self.context = context
        self.payload = payload
        self.status = SandboxStatus()

    async def run(self, prefix: str, env: dict) -> None:
        line = self.payload["log"]
        for name, value in env.items():
            line = line.replace("${" + name + "}", value)
        self.context.log(prefix + line)
        await monotonic_clock.wait_for(int(self.payload.get("sleepMs", 0)) * 1_000_000)
        # The first resolution wins: after a kill or an abort this does nothing.
        self.status.resolve_ok(bool(self.payload.get("succeed", True)))

    async def wait_for_result(self) -> "ResultSet":
        success = await self.status.wait()
        return ResultSet(success, self.payload.get("files", {}))

    async def new_shell(self, command, tty, stdin):
        raise error(types.Error_FeatureNotSupported)

    async def list_displays(self):
        raise error(types.Error_FeatureNotSupported)

    async def open_display(self, name, client):
        raise error(types.Error_FeatureNotSupported)

    async def abort(self) -> None:
        self.status.abort()

    async def kill(self) -> None:
        if self.status.kill():
            return
        # Stop the real work here; then the task ends as a failure.
        self.status.resolve_ok(False)

    @classmethod
    def release(cls, this) -> None:
        pass


class ResultSet(engine.ResultSet):
    def __init__(self, success: bool, files: dict):
        self._success = success
        self.files = files

    def success(self) -> bool:
        return self._success

    async def extract_file(self, path: str):
        if path not in self.files:
            raise error(types.Error_ResourceNotFound)
        return stream_of(self.files[path].encode())

    async def extract_folder(self, path: str, handler: host.FileHandler) -> None:
        # The handler is borrowed for this call: end the borrow before the result
        # is returned (componentize-py 0.25.1 would end it after; see
        # enginehost_helpers).
        with handler:
            prefix = path if path.endswith("/") else path + "/"
            matches = [(p[len(prefix):], text) for p, text in self.files.items() if p.startswith(prefix)]
            if not matches:
                raise error(types.Error_ResourceNotFound)
            for rel, text in matches:
                try:
                    await handler.handle_file(rel, stream_of(text.encode()))
                except Err:
                    raise error(types.Error_HandlerInterrupt)

    async def archive_sandbox(self):
        raise error(types.Error_FeatureNotSupported)

    async def dispose(self) -> None:
        pass

    @classmethod
    def release(cls, this) -> None:
        pass


class Shell(engine.Shell):
    @classmethod
    def release(cls, this) -> None:
        pass


class Volume(engine.Volume):
    @classmethod
    def release(cls, this) -> None:
        pass


class VolumeBuilder(engine.VolumeBuilder):
    @classmethod
    def release(cls, this) -> None:
        pass
