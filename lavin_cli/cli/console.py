"""Where the CLI writes: results to stdout, messages to stderr."""

from __future__ import annotations

import sys
from typing import NoReturn

from rich.console import Console
from rich.markup import escape

out = Console()
err = Console(stderr=True)


def fail(error: Exception) -> NoReturn:
    """One line on stderr, the error's documented exit code, no traceback."""
    code = getattr(error, "exit_code", 1)
    err.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False, soft_wrap=True)
    sys.exit(code)
