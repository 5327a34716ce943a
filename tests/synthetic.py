"""Moved to ``tests.support.trees``; kept so that tests written against the old name still
import (remove once none does)."""

from tests.support.trees import *  # noqa: F403
