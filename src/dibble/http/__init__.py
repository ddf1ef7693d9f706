"""The sans-I/O HTTP/1.1 layer: request bytes in, events out; response bytes built.

Nothing here touches a socket or an event loop, so every rule can be tested by
feeding bytes and reading results.
"""

from ._errors import (
    BodyTooLarge,
    HeadersTooLarge,
    InvalidResponseHeader,
    ProtocolError,
    RequestLineTooLong,
    UnsupportedTransferCoding,
)
from ._headers import Headers
from ._limits import KIB, MIB, Limits
from ._parser import END_OF_MESSAGE, Event, RequestParser
from ._request import RequestHead
from ._response import (
    CONTINUE,
    LAST_CHUNK,
    SERVER_NAME,
    DateHeader,
    encode_chunk,
    encode_header_fields,
    http_date,
    reason_phrase,
    status_line,
)

__all__ = [
    "CONTINUE",
    "END_OF_MESSAGE",
    "KIB",
    "LAST_CHUNK",
    "MIB",
    "SERVER_NAME",
    "BodyTooLarge",
    "DateHeader",
    "Event",
    "Headers",
    "HeadersTooLarge",
    "InvalidResponseHeader",
    "Limits",
    "ProtocolError",
    "RequestHead",
    "RequestLineTooLong",
    "RequestParser",
    "UnsupportedTransferCoding",
    "encode_chunk",
    "encode_header_fields",
    "http_date",
    "reason_phrase",
    "status_line",
]
