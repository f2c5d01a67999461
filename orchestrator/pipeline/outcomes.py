"""Strategy outcomes: per strategy, how often it was tried and how often it was validated.

They steer ranking (a Laplace-smoothed success rate multiplies a strategy's score). Stored as one small
JSON file written atomically; a corrupt file is reported and ignored rather than guessed at.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from orchestrator.fsutil import atomic_write

log = logging.getLogger(__name__)


class OutcomeStore:
    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, tuple[int, int]]:
        try:
            raw = json.loads(self.path.read_bytes())
            return {str(k): (int(v[0]), int(v[1])) for k, v in raw.items()}
        except FileNotFoundError:
            return {}
        except OSError as exc:
            log.warning("ignoring unreadable outcome history %s: %s", self.path, exc.strerror)
            return {}
        except (ValueError, TypeError, LookupError, AttributeError) as exc:
            log.warning("ignoring unreadable outcome history %s: %s", self.path, exc)
            return {}

    def record(self, strategy: str, *, succeeded: bool) -> None:
        data = self.load()
        wins, tries = data.get(strategy, (0, 0))
        data[strategy] = (wins + int(succeeded), tries + 1)
        atomic_write(self.path, json.dumps(data, indent=1, sort_keys=True).encode(), mode=0o600)
