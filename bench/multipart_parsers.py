"""The two streaming multipart parsers side by side (the choice in docs/files.md).

    pip install multipart python-multipart
    python bench/multipart_parsers.py

Feeds each parser the same bodies in the chunk sizes a server sees and
prints bodies per second and MB/s (best of three): a 100 MiB file in 64 KiB
and 8 KiB chunks, a small form, and two bodies built to make boundary
scanning work hard.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import multipart
from python_multipart.multipart import MultipartParser

B = "----dibbleboundary1234567890"


def form(payload: bytes) -> bytes:
    head = (
        f'--{B}\r\nContent-Disposition: form-data; name="title"\r\n\r\nhello\r\n'
        f'--{B}\r\nContent-Disposition: form-data; name="file"; filename="a.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    return head + payload + f"\r\n--{B}--\r\n".encode()


def run_multipart(chunks: list[bytes]) -> int:
    parser = multipart.PushMultipartParser(B, max_header_size=8192)
    received = 0
    for chunk in chunks:
        for event in parser.parse(chunk):
            if isinstance(event, bytes | bytearray):
                received += len(event)
    parser.close()
    return received


def run_python_multipart(chunks: list[bytes]) -> int:
    received = [0]

    def on_part_data(data: bytes, start: int, end: int) -> None:
        received[0] += end - start

    parser = MultipartParser(B, {"on_part_data": on_part_data})
    for chunk in chunks:
        parser.write(chunk)
    parser.finalize()
    return received[0]


PARSERS: list[tuple[str, Callable[[list[bytes]], int]]] = [
    ("multipart", run_multipart),
    ("python-multipart", run_python_multipart),
]


def bench(label: str, body: bytes, repeat: int, chunk: int = 65536) -> None:
    chunks = [body[i : i + chunk] for i in range(0, len(body), chunk)]
    for name, parse in PARSERS:
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            for _ in range(repeat):
                parse(chunks)
            best = min(best, time.perf_counter() - start)
        print(
            f"{label:34s} {name:17s} {repeat / best:10,.0f} bodies/s "
            f"{len(body) * repeat / best / 1e6:8,.0f} MB/s"
        )


def main() -> None:
    big = form(os.urandom(1 << 20) * 100)
    bench("100 MiB file, 64 KiB chunks", big, 1)
    bench("100 MiB file, 8 KiB chunks", big, 1, chunk=8192)
    bench("small form (1 KB file)", form(os.urandom(1024)), 20_000)
    bench("10 MB of CR LF dash", form(b"\r\n-" * ((10 << 20) // 3)), 3)
    near = (b"\r\n--" + B[:-1].encode()) * ((10 << 20) // (len(B) + 3))
    bench("10 MB of near-boundaries", form(near), 3)


if __name__ == "__main__":
    main()
