"""The commands a message suggests next, written with what the user gave (`-o`, `--state`,
`--provider`, `--base-url`) and quoted for a shell, so that they can be pasted as they are."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from batchgen.cli.options import DEFAULT_OUTPUT
from batchgen.demo import DEMO_MANIFEST
from batchgen.results.overview import provider_of
from batchgen.results.targets import RunTarget
from batchgen.state.store import Store

if TYPE_CHECKING:
    from batchgen.settings import Settings


@dataclass(frozen=True, slots=True)
class NextSteps:
    """How to name one run on the command line."""

    manifest: str
    output: Path = DEFAULT_OUTPUT
    state: Path | None = None  # given only where it is not OUTPUT/RUN/state.sqlite
    provider: str = "cometapi"
    base_url: str | None = None

    @classmethod
    def of_settings(cls, manifest: Path, settings: Settings) -> NextSteps:
        """The run of `manifest` as a command given `settings` runs it."""
        return cls(
            str(manifest), settings.output, settings.state, settings.provider, settings.base_url
        )

    @classmethod
    def of_state(cls, target: RunTarget, store: Store) -> NextSteps:
        """The run `target` names, whose state `store` says which manifest and provider."""
        named = str(target.manifest) if target.manifest else store.get_meta("manifest")
        base_url = store.get_meta("base_url") or None
        return cls(
            named or "MANIFEST", target.output, target.state_elsewhere, provider_of(store), base_url
        )

    def run(self) -> str:
        if self.manifest == str(DEMO_MANIFEST):
            named = ["--provider", self.provider] if self.provider != "cometapi" else []
            return _command("demo", *self._output(), *named)
        return _command("run", *self._manifest_and_flags(), *self._provider())

    def status(self) -> str:
        return _command("status", *self._target())

    def retry(self, *flags: str) -> str:
        return _command("retry", *self._target(), *flags)

    def adopt(self, row: str) -> str:
        flags = ("--job", row, "--task", "TASK_ID")
        return _command("adopt", *self._manifest_and_flags(), *self._provider(), *flags)

    def unknown_advice(self, row: str | None = None) -> str:
        """What to do about the unknown job of `row` (a job whose create may have been paid),
        or, without a row, about every unknown job."""
        resend = self.retry("--job", row) if row else self.retry("--unknown")
        return (
            f"find the task in the provider's dashboard and run {self.adopt(row or 'ROW')}, "
            f"or send {'it' if row else 'them'} again, at the risk of paying twice, with {resend}"
        )

    def _manifest_and_flags(self) -> list[str]:
        state = ["--state", str(self.state)] if self.state else []
        return [self.manifest, *self._output(), *state]

    def _target(self) -> list[str]:
        """For commands that take MANIFEST or STATE: the state itself where it is elsewhere."""
        return [str(self.state)] if self.state else [self.manifest, *self._output()]

    def _output(self) -> list[str]:
        return [] if self.output == DEFAULT_OUTPUT else ["-o", str(self.output)]

    def _provider(self) -> list[str]:
        named = ["--provider", self.provider] if self.provider != "cometapi" else []
        return named + (["--base-url", self.base_url] if self.base_url else [])


def _command(*args: str) -> str:
    return f"`{shlex.join(['batchgen', *args])}`"
