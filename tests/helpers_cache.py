"""Moved to ``tests.support.cache``; kept so that tests written against the old name still
import (remove once none does)."""

from tests.support.cache import *  # noqa: F403
