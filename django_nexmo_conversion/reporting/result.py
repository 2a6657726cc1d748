"""What one report run did: counts, and the halt that stopped it if one did."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..choices import Outcome


@dataclass
class RunHalt:
    """An answer that stopped reporting during a run. Nothing was burned: what was not sent
    stays pending."""

    #: ``Outcome.ACCOUNT_ERROR`` (401/402: those accounts stopped, others went on) or
    #: ``Outcome.ENDPOINT_ERROR`` (403/404/405/406/415, a redirect: the whole run stopped).
    outcome: str
    status_code: int | None
    error: str
    #: The API keys an account error stopped (empty for an endpoint error alone).
    api_keys: list[str] = field(default_factory=list)

    @property
    def everything(self) -> bool:
        """The whole run stopped, every account (an endpoint error)."""
        return self.outcome == Outcome.ENDPOINT_ERROR


@dataclass
class ReportResult:
    """What one report run did."""

    reported: int = 0
    retrying: int = 0
    failed: int = 0
    #: Messages marked ``delivered=False`` by ``NON_CONVERSION_AFTER`` before the run.
    non_conversions: int = 0
    #: The answer that stopped reporting, or None: one place says it all.
    halt: RunHalt | None = None

    @property
    def attempted(self) -> int:
        return self.reported + self.retrying + self.failed

    # Read-only views of ``halt`` under the names this class had before (kept for callers).
    @property
    def halted(self) -> bool:
        """True when an answer stopped reporting (see ``halt``)."""
        return self.halt is not None

    @property
    def halted_run(self) -> bool:
        """True when an endpoint error stopped the whole run, every account."""
        return self.halt is not None and self.halt.everything

    @property
    def halted_accounts(self) -> list[str]:
        """The API keys a 401/402 stopped during this run."""
        return list(self.halt.api_keys) if self.halt is not None else []

    @property
    def status_code(self) -> int | None:
        """The HTTP status of the answer that halted the run."""
        return self.halt.status_code if self.halt is not None else None

    @property
    def error(self) -> str:
        """The error text of the answer that halted the run ("" when none did)."""
        return self.halt.error if self.halt is not None else ""

    def summary(self) -> str:
        text = f"reported {self.reported}, retrying {self.retrying}, failed {self.failed}"
        if self.halt is not None and self.halt.everything:
            text += f"; HALTED by an endpoint error: {self.halt.error}"
        elif self.halt is not None:
            keys = ", ".join(self.halt.api_keys)
            text += f"; account(s) {keys} HALTED by an account error: {self.halt.error}"
        return text
