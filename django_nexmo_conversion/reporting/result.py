"""What one report run did: counts, halts and the error that stopped it."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ReportResult:
    """What one report run did."""

    reported: int = 0
    retrying: int = 0
    failed: int = 0
    #: True when an answer stopped reporting: a 401/402 for an account (listed in
    #: ``halted_accounts``; other accounts went on) or an endpoint error (403/404/405/406/415,
    #: a redirect: ``halted_run``). What was not sent stays pending, nothing is burned.
    halted: bool = False
    status_code: int | None = None
    error: str = ""
    #: Messages marked ``delivered=False`` by ``NON_CONVERSION_AFTER`` before the run.
    non_conversions: int = 0
    #: The API keys a 401/402 stopped during this run.
    halted_accounts: list[str] = field(default_factory=list)
    #: True when an endpoint error stopped the whole run, every account.
    halted_run: bool = False

    @property
    def attempted(self) -> int:
        return self.reported + self.retrying + self.failed

    def summary(self) -> str:
        text = f"reported {self.reported}, retrying {self.retrying}, failed {self.failed}"
        if self.halted_run:
            text += f"; HALTED by an endpoint error: {self.error}"
        elif self.halted:
            keys = ", ".join(self.halted_accounts)
            text += f"; account(s) {keys} HALTED by an account error: {self.error}"
        return text
