"""CSV cells a spreadsheet would run as formulas: escaped on export, unescaped on import."""

# A spreadsheet runs a cell starting with one of these as a formula, so the export puts
# an apostrophe in front (as spreadsheets themselves do) and the import takes it off again:
# a name typed into the public form as =HYPERLINK(...) stays a name. A value that really
# starts with apostrophes before one of these ('=x) gets one more, so that it too comes
# back as it was: export then import gives back every value unchanged.
FORMULA_STARTS = frozenset("=+-@\t\r")


def _formula_like(value):
    return value.lstrip("'")[:1] in FORMULA_STARTS


def formula_escape(value):
    return f"'{value}" if _formula_like(value) else value


def formula_unescape(value):
    return value[1:] if value[:1] == "'" and _formula_like(value) else value
