"""`--help` as lavin prints it: usage, what the command does, its examples (each on a line of its
own, never wrapped by the renderer), then its options in panels (inputs, outputs, sampling,
dataset, device, other), each option as "-i, --query PATH" beside its help text.

The help text takes all the width the flags leave and wraps at spaces; a word longer than its
column is folded onto the next line, never cut with an ellipsis. Examples in a docstring are
lines wrapped in [dim]...[/]; a long one continues with a trailing backslash, as in a shell.
"""

from __future__ import annotations

import re
import sys

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

PANELS = ("Inputs", "Outputs", "Sampling", "Dataset", "Model and device", "Options")  # the order they are shown in
FLAG_COLUMN_MAX = 26  # wider flags give their help a line of its own
_EXAMPLE = re.compile(r"^\s*\[dim\](.*)\[/\]\s*$")


def split_docstring(text: str) -> tuple[list[str], list[str]]:
    """Paragraphs of description, and example lines ([dim]...[/])."""
    description, examples, paragraph = [], [], []
    for line in (text or "").strip().splitlines():
        found = _EXAMPLE.match(line)
        if found:
            examples.append(found.group(1))
        elif line.strip():
            paragraph.append(line.strip())
        elif paragraph:
            description.append(" ".join(paragraph))
            paragraph = []
    if paragraph:
        description.append(" ".join(paragraph))
    return description, examples


def _flags(param) -> str:
    short = [o for o in param.opts + param.secondary_opts if not o.startswith("--")]
    long = [o for o in param.opts + param.secondary_opts if o.startswith("--")]
    names = ", ".join(short + long)
    metavar = param.metavar if isinstance(param.metavar, str) else ""
    return f"{names} {metavar}".rstrip() if not getattr(param, "is_flag", False) else names


def _help_text(param, ctx) -> Text:
    text = Text(param.help or "")
    default = param.default
    if callable(default):
        default = None
    if getattr(param, "show_default", True) is not False and not getattr(param, "is_flag", False) \
            and default not in (None, "", (), []):
        shown = getattr(default, "value", default)
        text.append(f" [default: {shown}]", style="dim")
    if param.required:
        text.append(" [required]", style="red")
    return text


def _options_rows(rows: list[tuple[str, Text]], width: int) -> Group:
    """Flags in a column as wide as the panel's widest flag (at most FLAG_COLUMN_MAX); a wider
    flag gets a line of its own, with its help below it in the help column."""
    fitting = [len(flag) for flag, _ in rows if len(flag) <= FLAG_COLUMN_MAX]
    flag_width = min(max(fitting or [FLAG_COLUMN_MAX]), max(8, width // 3))
    lines: list = []
    for flag, help_text in rows:
        grid = Table.grid(padding=(0, 2), expand=True)
        grid.add_column(width=flag_width, overflow="fold")
        grid.add_column(ratio=1, overflow="fold")
        if len(flag) > flag_width:
            lines.append(Text(flag, style="bold cyan", overflow="fold"))
            grid.add_row("", help_text)
        else:
            grid.add_row(Text(flag, style="bold cyan", overflow="fold"), help_text)
        lines.append(grid)
    return Group(*lines)


def _panels(command, ctx, width: int) -> list:
    grouped: dict[str, list[tuple[str, Text]]] = {}
    for param in command.get_params(ctx):
        if getattr(param, "hidden", False) or param.param_type_name != "option":
            continue
        panel = getattr(param, "rich_help_panel", None) or "Options"
        grouped.setdefault(panel, []).append((_flags(param), _help_text(param, ctx)))
    order = [p for p in PANELS if p in grouped] + [p for p in grouped if p not in PANELS]
    return [Panel(_options_rows(grouped[name], width), title=name, title_align="left", border_style="dim")
            for name in order]


def _commands_panel(command, ctx) -> list:
    names = command.list_commands(ctx) if hasattr(command, "list_commands") else []
    if not names:
        return []
    table = Table.grid(padding=(0, 2), expand=True)
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column(ratio=1, overflow="fold")
    for name in names:
        sub = command.get_command(ctx, name)
        if sub is None or getattr(sub, "hidden", False):
            continue
        table.add_row(name, Text(split_docstring(sub.help or "")[0][0] if sub.help else ""))
    return [Panel(table, title="Commands", title_align="left", border_style="dim")]


def render(command, ctx, file=None) -> None:
    """Print `command`'s help for `ctx` on stdout (or `file`), at the terminal's width ($COLUMNS)."""
    console = Console(file=file or sys.stdout, highlight=False, soft_wrap=False)
    width = console.width
    pieces = " ".join(command.collect_usage_pieces(ctx))
    parts: list = [Text.assemble(("Usage: ", "bold"), f"{ctx.command_path} {pieces}".rstrip()), Text("")]
    description, examples = split_docstring(command.help or "")
    for paragraph in description:
        parts += [Text(paragraph), Text("")]
    if examples:
        parts.append(Text("Examples:", style="bold"))
        parts += [Text("  " + line, style="dim", overflow="fold") for line in examples]
        parts.append(Text(""))
    parts += _panels(command, ctx, width) + _commands_panel(command, ctx)
    console.print(Group(*parts))
