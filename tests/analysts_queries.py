"""The example queries of docs/analysts.md, read once for the tests that run or check them."""

from pathlib import Path

PAGE = Path(__file__).resolve().parents[1] / "docs" / "analysts.md"


def analysts_queries() -> list[str]:
    """Every ```sql block of the page, in order."""
    return [block.split("```", 1)[0].strip() for block in PAGE.read_text().split("```sql")[1:]]
