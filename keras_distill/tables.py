"""The one markdown-table renderer of the package, its command and its
examples."""


def markdown_table(header, rows):
    """A markdown table.

    Args:
        header: list of column names.
        rows: list of rows, each a list of cells (rendered with `str`) or
            a dict keyed by the column names.

    Returns:
        The table as one string, without a trailing newline.
    """
    lines = ["| " + " | ".join(str(name) for name in header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [row[name] for name in header] if isinstance(row, dict) else row
        lines.append("| " + " | ".join(str(cell) for cell in cells) + " |")
    return "\n".join(lines)
