from typing import Any

from ._collector import _PyCore

class CollectorCore(_PyCore): ...

def plain_json(values: list[Any], /) -> str | None: ...
