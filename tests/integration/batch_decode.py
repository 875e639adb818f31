"""The README's decoder of salvo envelopes (section "Batching"), kept here so that tests run
the very code users copy: tests/codec/test_batch_decode.py against envelopes salvo's codec
made. Needs python3-lz4 and python3-zstandard."""
import struct

import lz4.frame
import zstandard


def salvo_records(props, body, limit=64 << 20):
    """The records (a list of bytes) of a salvo envelope; None if the message is not one."""
    if props.content_type != "application/vnd.salvo.batch+v1":
        return None
    enc = props.content_encoding
    if enc == "lz4":
        size = lz4.frame.get_frame_info(body)["content_size"]  # 0: not declared
        d = lz4.frame.LZ4FrameDecompressor()
        body = d.decompress(body, max_length=min(size or limit, limit))
    elif enc == "zstd":
        if not 0 <= zstandard.frame_content_size(body) <= limit:  # salvo always writes it
            raise ValueError("zstd frame without its size, or over the limit")
        d = zstandard.ZstdDecompressor().decompressobj()
        body = d.decompress(body)
    elif enc is not None:
        raise ValueError("unknown content_encoding %r" % enc)
    if enc and (not d.eof or d.unused_data):
        raise ValueError("not exactly one whole %s frame within the limit" % enc)
    records, at = [], 0
    while at + 4 <= len(body):
        (n,) = struct.unpack_from(">I", body, at)
        records.append(body[at + 4:at + 4 + n])
        at += 4 + n
    if at != len(body) or len(records) != (props.headers or {}).get("x-salvo-records"):
        raise ValueError("the records do not add up to the body and x-salvo-records")
    return records
