#!/usr/bin/env python3
"""Fuzz target: FrameReader (and the per-byte kernels), compiled vs pure, chunked vs whole, vs a reference.

Input layout (atheris.FuzzedDataProvider): reader options, a mode, a chunking
plan, a buffer kind, then the bytes.

mode 0 ("raw"): the rest of the input is the byte stream.
mode 1 ("encode"): the rest describes frames (opcode, fin, rsv, mask key, payload
  length up to 70,000 bytes made by repeating fuzzer bytes, so the SIMD and
  GIL-free kernel paths are reached); both backends' ``encode_frame`` and
  ``encode_frame_into`` must agree byte for byte (or raise the same ValueError),
  and the encoded stream, plus an optional raw tail, is what the readers get.

Checked, for every input:
- four readers (python, cython) x (one feed, the chunked feeds) return the same
  frames (opcode, fin, rsv, payload), the same error (code and reason), the same
  ``pending`` and ``in_message``;
- ``feed`` never raises; an error's code is 1002, 1007 or 1009;
- a feed does not keep the caller's buffer (a bytearray can be resized and
  overwritten right after, without changing any frame);
- an independent reference decoder written here (RFC 6455 section 5, the
  documented limits, UTF-8 checked as bytes arrive) finds the same frames, and
  the reader's close code is one of the codes the offending frame deserves;
- mask / mask_inplace / validate_utf8 / Utf8Validator agree between backends on
  the payloads seen.
"""

from __future__ import annotations

import sys

import atheris

from _common import BACKENDS, ProtocolError, check_equal, consume_chunking, finding, run, split

LIMITS = (-1, 0, 1, 2, 125, 126, 127, 200, 65535, 65536, 70000, 2**31, 2**62)
OPCODES = (0x0, 0x1, 0x2, 0x8, 0x9, 0xA, 0x3, 0xB, 0xF)


# --- the reference -------------------------------------------------------------------------


def _unmask(data: bytes, key: bytes) -> bytes:
    n = len(data)
    pad = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(pad, "big")).to_bytes(n, "big")


def _utf8_extendable(data: bytes) -> bool:
    """True when ``data`` is valid UTF-8 or a valid UTF-8 text cut in its last character."""
    try:
        data.decode("utf-8")
        return True
    except UnicodeDecodeError:
        pass
    # Find the start of the last (maybe incomplete) sequence and try every way to finish it.
    for back in (1, 2, 3):
        if back > len(data):
            break
        lead = data[-back]
        if lead < 0x80:
            return False
        if lead >= 0xC0:
            need = 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4
            if need <= back:
                return False
            head, tail = data[:-back], data[-back:]
            try:
                head.decode("utf-8")
            except UnicodeDecodeError:
                return False
            missing = need - back
            for second in (0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF):
                fill = (bytes([second]) + b"\x80" * (missing - 1)) if back == 1 else b"\x80" * missing
                try:
                    (tail + fill).decode("utf-8")
                    return True
                except UnicodeDecodeError:
                    continue
            return False
    return False


def reference(stream: bytes, require_mask, max_frame: int, max_message: int, allowed_rsv: int, check_utf8: bool):
    """Decode ``stream`` by RFC 6455 as wsframe documents it.

    Returns (frames, codes, pending, in_message): ``codes`` is None when the
    stream breaks no rule so far, else the set of close codes the first bad
    frame deserves (the reader must report one of them).
    """
    frames = []
    pos = 0
    n = len(stream)
    msg_op = 0
    msg_size = 0
    msg_rsv = 0
    text = b""
    while True:
        if n - pos < 2:
            return frames, None, n - pos, msg_op != 0
        b0, b1 = stream[pos], stream[pos + 1]
        fin = bool(b0 & 0x80)
        rsv = (b0 >> 4) & 7
        opcode = b0 & 0x0F
        masked = bool(b1 & 0x80)
        n7 = b1 & 0x7F
        hlen = 2 + (2 if n7 == 126 else 8 if n7 == 127 else 0) + (4 if masked else 0)
        if n - pos < hlen:
            return frames, None, n - pos, msg_op != 0
        if n7 == 126:
            length = int.from_bytes(stream[pos + 2 : pos + 4], "big")
        elif n7 == 127:
            length = int.from_bytes(stream[pos + 2 : pos + 10], "big")
        else:
            length = n7
        key = stream[pos + hlen - 4 : pos + hlen] if masked else b"\0\0\0\0"
        bad = set()
        control = opcode >= 8
        if opcode not in (0, 1, 2, 8, 9, 10):
            bad.add(1002)
        if control and not fin:
            bad.add(1002)
        if control and (length > 125 or n7 > 125):  # a 16/64-bit length form on a control frame is refused too
            bad.add(1002)
        if n7 == 127 and length >= 2**63:
            bad.add(1002)
        if max_frame >= 0 and length > max_frame:
            bad.add(1009)
        if require_mask is not None and masked != require_mask:
            bad.add(1002)
        if rsv & ~allowed_rsv:
            bad.add(1002)
        if control and rsv & 4:
            bad.add(1002)
        new_op, new_size, new_rsv = msg_op, msg_size, msg_rsv
        if opcode in (0, 1, 2):
            order_ok = True
            if opcode == 0:
                if msg_op == 0:
                    bad.add(1002)
                    order_ok = False
                if rsv & 4:
                    bad.add(1002)
            else:
                if msg_op != 0:
                    bad.add(1002)
                    order_ok = False
                new_op, new_size, new_rsv = opcode, 0, rsv
            if order_ok and max_message >= 0 and new_size + length > max_message:
                bad.add(1009)
            new_size += length
        if bad:
            return frames, bad, None, None
        start = pos + hlen
        avail = min(length, n - start)
        payload = _unmask(stream[start : start + avail], key)
        is_text = (not control) and check_utf8 and new_op == 1 and not (new_rsv & 4)
        if is_text:
            so_far = (b"" if opcode == 1 else text) + payload
            complete = avail == length
            if complete and fin:
                try:
                    so_far.decode("utf-8")
                except UnicodeDecodeError:
                    return frames, {1007}, None, None
            elif not _utf8_extendable(so_far):
                return frames, {1007}, None, None
        if avail < length:
            return frames, None, avail, new_op != 0
        if not control:
            msg_op, msg_size, msg_rsv = new_op, new_size, new_rsv
            if is_text:
                text = so_far
            if fin:
                msg_op = 0
                text = b""
        frames.append((opcode, fin, rsv, payload))
        pos = start + length


# --- running the readers -------------------------------------------------------------------


def as_buffer(piece: bytes, kind: int):
    if kind == 1:
        return bytearray(piece)
    if kind == 2:
        return memoryview(bytearray(piece))
    if kind == 3:
        return memoryview(piece)
    return piece


def run_reader(backend, opts, pieces, kind):
    reader = backend.FrameReader(*opts)
    frames = []
    for piece in pieces:
        buf = as_buffer(piece, kind)
        try:
            got = reader.feed(buf)
        except Exception as exc:  # noqa: BLE001 - feed() must never raise
            finding("reader.raises", f"{backend.name}: feed raised {exc!r}")
            return None
        frames.extend((f.opcode, f.fin, f.rsv, f.payload) for f in got)
        # The caller may reuse its buffer at once: overwrite it, then resize it.
        if kind == 2:
            base = buf.obj
            buf.release()
            buf = base
        if kind in (1, 2):
            buf[:] = b"\xaa" * len(buf)
            try:
                buf.clear()
            except BufferError as exc:
                finding("reader.keeps-buffer", f"{backend.name}: the fed bytearray is still exported: {exc!r}")
    err = reader.error
    if err is not None:
        if not isinstance(err, ProtocolError) or err.code not in (1002, 1007, 1009):
            finding("reader.bad-error", f"{backend.name}: error {err!r}")
        err = (err.code, err.reason)
    if err is None:
        state = (reader.pending, reader.in_message)
    else:
        state = (reader.pending,)
    frames = [(op, fin, rsv, bytes(p)) for op, fin, rsv, p in frames]
    return frames, err, state


def consume_frames(fdp: atheris.FuzzedDataProvider) -> bytes:
    """Mode 1: frames described by the input, encoded by both backends (which must agree)."""
    out = bytearray()
    for _ in range(fdp.ConsumeIntInRange(0, 6)):
        opcode = OPCODES[fdp.ConsumeIntInRange(0, len(OPCODES) - 1)]
        fin = fdp.ConsumeBool() or opcode >= 8
        rsv = fdp.ConsumeIntInRange(0, 7) if fdp.ConsumeIntInRange(0, 7) == 0 else 0
        key = fdp.ConsumeBytes(4) if fdp.ConsumeBool() else None
        if key is not None and len(key) != 4:
            key = key.ljust(4, b"\0")
        size_kind = fdp.ConsumeIntInRange(0, 7)
        if size_kind == 0:
            length = fdp.ConsumeIntInRange(0, 70000)
        elif size_kind == 1:
            length = fdp.PickValueInList([125, 126, 127, 255, 256, 257, 65535, 65536, 65537])
        else:
            length = fdp.ConsumeIntInRange(0, 300)
        pattern = fdp.ConsumeBytes(fdp.ConsumeIntInRange(1, 64)) or b"a"
        payload = (pattern * (length // len(pattern) + 1))[:length]
        results = {}
        for name, b in BACKENDS:
            try:
                one = b.encode_frame(opcode, payload, fin, rsv, key)
            except ValueError as exc:
                one = ("ValueError", str(exc))
            try:
                buf = bytearray(b"\x55" * (b.frame_size(len(payload), key is not None) + 3))
                size = b.encode_frame_into(buf, 3, opcode, payload, fin, rsv, key)
                into = bytes(buf[3 : 3 + size])
                if bytes(buf[:3]) != b"\x55" * 3 or len(buf) != size + 3:
                    finding("encode.into-bounds", f"{name}: encode_frame_into wrote outside its frame")
            except ValueError as exc:
                into = ("ValueError", str(exc))
            if one != into:
                finding("encode.into-differs", f"{name}: encode_frame {one!r:.200} != encode_frame_into {into!r:.200}")
            results[name] = one
        check_equal("encode.backends", "encode_frame results", results)
        frame = results["python"]
        if isinstance(frame, bytes):
            out += frame
    return bytes(out)


def check_kernels(payloads, fdp_key: bytes, phase: int) -> None:
    """The kernels agree between backends on data the fuzzer chose."""
    if len(BACKENDS) < 2:
        return
    key = (fdp_key + b"\x01\x02\x03\x04")[:4]
    for data in payloads[:4]:
        res = {}
        for name, b in BACKENDS:
            buf = bytearray(data)
            b.mask_inplace(buf, key, phase)
            v = b.Utf8Validator()
            verdict = None
            try:
                cut = phase % (len(data) + 1)
                v.feed(data[:cut])
                v.feed(data, cut)
                v.finish()
            except ProtocolError as exc:
                verdict = (exc.code, exc.reason)
            res[name] = (b.mask(data, key, phase), bytes(buf), b.validate_utf8(data), verdict, v.complete)
        check_equal("kernels.backends", "kernel results", res)


def TestOneInput(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    require_mask = (None, True, False)[fdp.ConsumeIntInRange(0, 2)]
    max_frame = LIMITS[fdp.ConsumeIntInRange(0, len(LIMITS) - 1)]
    max_message = LIMITS[fdp.ConsumeIntInRange(0, len(LIMITS) - 1)]
    allowed_rsv = fdp.ConsumeIntInRange(0, 7) if fdp.ConsumeIntInRange(0, 3) == 0 else 0
    check_utf8 = fdp.ConsumeIntInRange(0, 7) != 0
    mode = fdp.ConsumeIntInRange(0, 1)
    plan = consume_chunking(fdp)
    kind = fdp.ConsumeIntInRange(0, 3)
    if mode == 1:
        stream = consume_frames(fdp) + fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 32))
    else:
        stream = fdp.ConsumeBytes(fdp.remaining_bytes())
    opts = (require_mask, max_frame, max_message, allowed_rsv, check_utf8)
    pieces = split(stream, plan)
    results = {}
    for name, b in BACKENDS:
        results[f"{name}/whole"] = run_reader(b, opts, [stream] if stream else [], kind)
        results[f"{name}/chunked"] = run_reader(b, opts, pieces, kind)
    check_equal("reader.backends", "reader outcomes", {k: v for k, v in results.items() if k.endswith("/whole")})
    check_equal("reader.chunking", "reader outcomes", results)

    frames, err, state = results["python/whole"]
    ref_frames, ref_codes, ref_pending, ref_in_message = reference(stream, *opts)
    if ref_frames != frames:
        finding("reader.reference.frames", f"frames {frames!r:.300} != reference {ref_frames!r:.300} (error {err})")
    if ref_codes is None:
        if err is not None:
            finding("reader.reference.error", f"reader failed with {err} where the reference sees no violation")
        elif state != (ref_pending, ref_in_message):
            finding("reader.reference.state", f"pending/in_message {state} != reference {(ref_pending, ref_in_message)}")
    elif err is None:
        finding("reader.reference.error", f"reader accepted a stream the reference fails with {sorted(ref_codes)}")
    elif err[0] not in ref_codes:
        finding("reader.reference.code", f"reader code {err} not among the reference's {sorted(ref_codes)}")

    check_kernels([f[3] for f in frames] + [stream[:300]], stream[:4], len(stream) % 7)


if __name__ == "__main__":
    run(TestOneInput)
