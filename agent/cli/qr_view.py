"""A QR code PNG drawn on a terminal: PNG decoding (stdlib only), the module grid, half-block characters."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable

# ---- PNG decoding (stdlib only) --------------------------------------------------------------------------------

_PNG_SIG = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_DEPTHS = {0: (1, 2, 4, 8), 2: (8,), 3: (1, 2, 4, 8), 4: (8,), 6: (8,)}
_MAX_PIXELS = 16_000_000


def _luma(r: int, g: int, b: int, a: int = 255) -> int:
    """Luminance 0..255, composited over white (a transparent pixel is light)."""
    y = (299 * r + 587 * g + 114 * b) // 1000
    return (y * a + 255 * (255 - a)) // 255


def _unfilter(raw: bytes, height: int, stride: int, bpp: int) -> list[bytearray]:
    rows: list[bytearray] = []
    prev = bytearray(stride)
    for y in range(height):
        off = y * (stride + 1)
        kind, line = raw[off], bytearray(raw[off + 1 : off + 1 + stride])
        if kind == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif kind == 2:
            line = bytearray((a + b) & 0xFF for a, b in zip(line, prev, strict=True))
        elif kind == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif kind == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b, c = prev[i], (prev[i - bpp] if i >= bpp else 0)
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 0xFF
        elif kind != 0:
            raise ValueError(f"PNG 第 {y} 行的过滤类型 {kind} 无效")
        rows.append(line)
        prev = line
    return rows


def _decode_png(png: bytes) -> list[list[int]]:
    """The image as rows of luminance values 0..255 (alpha composited over white)."""
    if not png.startswith(_PNG_SIG):
        raise ValueError("不是 PNG 图片（文件头不对）")
    pos, header, palette, trns, idat = len(_PNG_SIG), None, b"", None, []
    while True:
        if pos + 8 > len(png):
            raise ValueError("PNG 数据被截断（缺少 IEND）")
        length, ctype = struct.unpack(">I4s", png[pos : pos + 8])
        data, crc = png[pos + 8 : pos + 8 + length], png[pos + 8 + length : pos + 12 + length]
        name = ctype.decode("latin-1")
        if len(data) != length or len(crc) != 4:
            raise ValueError(f"PNG 数据块 {name!r} 被截断")
        if zlib.crc32(ctype + data) != int.from_bytes(crc, "big"):
            raise ValueError(f"PNG 数据块 {name!r} 校验和（CRC）错误")
        pos += 12 + length
        if header is None and ctype != b"IHDR":
            raise ValueError("PNG 的第一个数据块不是 IHDR")
        if ctype == b"IHDR":
            if length != 13:
                raise ValueError("PNG 的 IHDR 长度不对")
            header = struct.unpack(">IIBBBBB", data)
        elif ctype == b"PLTE":
            palette = data
        elif ctype == b"tRNS":
            trns = data
        elif ctype == b"IDAT":
            idat.append(data)
        elif ctype == b"IEND":
            break
        elif not ctype[0] & 0x20:
            raise ValueError(f"不支持的 PNG 关键数据块 {name!r}")
    width, height, depth, colour, compression, filtering, interlace = header
    if not 0 < width * height <= _MAX_PIXELS:
        raise ValueError(f"PNG 尺寸 {width}×{height} 无效或过大")
    if colour not in _DEPTHS or depth not in _DEPTHS[colour]:
        raise ValueError(f"不支持的 PNG 格式：颜色类型 {colour}，位深 {depth}")
    if compression or filtering:
        raise ValueError("不支持的 PNG 压缩或过滤方法")
    if interlace:
        raise ValueError("不支持隔行扫描（Adam7）的 PNG")
    channels = _CHANNELS[colour]
    stride, bpp = (width * channels * depth + 7) // 8, max(1, channels * depth // 8)
    expected = height * (stride + 1)
    try:
        raw = zlib.decompressobj().decompress(b"".join(idat), expected)
    except zlib.error as exc:
        raise ValueError(f"PNG 图像数据解压失败：{exc}") from None
    if len(raw) < expected:
        raise ValueError("PNG 图像数据不完整")
    rows = _unfilter(raw, height, stride, bpp)
    return [_row_luma(line, width, depth, colour, palette, trns) for line in rows]


def _row_luma(line: bytearray, width: int, depth: int, colour: int, palette: bytes, trns: bytes | None) -> list[int]:
    if colour in (0, 3):
        if depth == 8:
            samples = list(line[:width])
        else:
            mask, per = (1 << depth) - 1, 8 // depth
            samples = [(line[x // per] >> (8 - depth * (x % per + 1))) & mask for x in range(width)]
        if colour == 0:
            scale, clear = 255 // ((1 << depth) - 1), (int.from_bytes(trns[:2], "big") if trns else -1)
            return [255 if v == clear else v * scale for v in samples]
        alphas = trns or b""
        lut = [_luma(*palette[i : i + 3], alphas[i // 3] if i // 3 < len(alphas) else 255)
               for i in range(0, len(palette) - 2, 3)]
        if samples and max(samples) >= len(lut):
            raise ValueError("PNG 调色板索引超出范围（缺少或过短的 PLTE）")
        return [lut[v] for v in samples]
    if colour == 4:
        return [_luma(line[i], line[i], line[i], line[i + 1]) for i in range(0, 2 * width, 2)]
    if colour == 6:
        return [_luma(line[i], line[i + 1], line[i + 2], line[i + 3]) for i in range(0, 4 * width, 4)]
    clear_rgb = tuple(trns[i] for i in (1, 3, 5)) if trns and len(trns) >= 6 else None
    return [255 if (line[i], line[i + 1], line[i + 2]) == clear_rgb else _luma(line[i], line[i + 1], line[i + 2])
            for i in range(0, 3 * width, 3)]


def _dark_pixels(png: bytes) -> list[list[bool]]:
    grey = _decode_png(png)
    lo, hi = min(min(r) for r in grey), max(max(r) for r in grey)
    if hi - lo < 32:  # one flat colour: nothing is dark
        return [[False] * len(r) for r in grey]
    threshold = (lo + hi) / 2
    return [[v < threshold for v in r] for r in grey]


# ---- the QR module grid ------------------------------------------------------------------------------------------

_FINDER = [[max(abs(x - 3), abs(y - 3)) != 2 for x in range(7)] for y in range(7)]  # 7×7, dark ring, light, 3×3
_SIZES = (11, 13, 15, 17, *range(21, 178, 4))  # Micro QR M1–M4, QR versions 1–40


def _runs(pixels: Iterable[bool], count: int) -> list[int] | None:
    """The first `count` runs (starting dark) when a run of the other colour follows them, else None."""
    runs: list[int] = []
    current: bool | None = None
    for p in pixels:
        if current is None and not p:
            return None
        if p == current:
            runs[-1] += 1
        elif len(runs) == count:
            return runs
        else:
            runs.append(1)
            current = p
    return None


def _finder_module(runs: list[int] | None) -> float | None:
    """The module size if the runs look like a finder pattern's 1:1:3:1:1."""
    if runs is None:
        return None
    m = sum(runs) / 7
    ok = all(abs(r - e * m) <= 0.5 * m + 1 for r, e in zip(runs, (1, 1, 3, 1, 1), strict=True))
    return m if ok else None


def _snap(estimate: float) -> int:
    best = min(_SIZES, key=lambda s: abs(s - estimate))
    return best if abs(best - estimate) <= 1.5 else max(1, round(estimate))


def _grid(dark: list[list[bool]]) -> list[list[bool]] | None:
    rows = [y for y, r in enumerate(dark) if any(r)]
    if not rows:
        return None
    top, bottom = rows[0], rows[-1]
    left = min(dark[y].index(True) for y in rows)
    right = max(len(dark[y]) - 1 - dark[y][::-1].index(True) for y in rows)
    height, width = len(dark), len(dark[0])
    diag = (dark[top + i][left + i] for i in range(min(height - top, width - left)))
    m = _finder_module(_runs(diag, 5))
    if m is None:
        return None
    mid_y, mid_x = top + int(3.5 * m), left + int(3.5 * m)
    if mid_y >= height or mid_x >= width:
        return None
    mx = _finder_module(_runs(dark[mid_y][left:], 5))
    my = _finder_module(_runs((dark[y][mid_x] for y in range(top, height)), 5))
    if mx is None or my is None:
        return None
    span_x, span_y = right - left + 1, bottom - top + 1
    nx, ny = _snap(span_x / mx), _snap(span_y / my)
    if nx == ny or abs(span_x / mx - span_y / my) < 1.5:
        nx = ny = _snap((span_x / mx + span_y / my) / 2)
    if nx < 7 or ny < 7:
        return None
    sx, sy = span_x / nx, span_y / ny
    matrix = [[dark[top + int((j + 0.5) * sy)][left + int((i + 0.5) * sx)] for i in range(nx)] for j in range(ny)]
    if [r[:7] for r in matrix[:7]] != _FINDER:
        return None
    return matrix


def qr_matrix(png: bytes) -> list[list[bool]]:
    """The QR code's modules in a PNG (True = dark), without the quiet zone. ValueError if none is found."""
    matrix = _grid(_dark_pixels(png))
    if matrix is None:
        raise ValueError("图片中没有找到二维码的定位图案")
    return matrix


def _half_blocks(ink: list[list[bool]]) -> str:
    """Two pixel rows per text line: ▀ top only, ▄ bottom only, █ both, space neither."""
    width = max((len(r) for r in ink), default=0)
    rows = [r + [False] * (width - len(r)) for r in ink]
    if len(rows) % 2:
        rows.append([False] * width)
    chars = {(True, True): "█", (True, False): "▀", (False, True): "▄", (False, False): " "}
    return "\n".join("".join(chars[t, b] for t, b in zip(top, bot, strict=True))
                     for top, bot in zip(rows[::2], rows[1::2], strict=True))


def png_to_terminal(png: bytes, invert: bool = False) -> str:
    """A PNG drawn with half blocks. A QR code is redrawn module by module with a 2-module quiet zone, light
    modules as █ (scannable on a dark terminal); `invert=True` draws the dark modules instead (light terminal).
    Other images are downscaled to at most 60 columns. ValueError if the PNG cannot be decoded."""
    dark = _dark_pixels(png)
    matrix = _grid(dark)
    if matrix is not None:
        q, n = 2, len(matrix[0])
        blank = [[False] * (n + 2 * q) for _ in range(q)]
        cells = blank + [[False] * q + r + [False] * q for r in matrix] + [list(r) for r in blank]
        last_light = [not invert] * (n + 2 * q)  # keeps the padding row (odd height) in the quiet zone's colour
        ink = [[c == invert for c in r] for r in cells]
        if len(ink) % 2:
            ink.append(last_light)
        return _half_blocks(ink)
    height, width = len(dark), len(dark[0])
    f = -(-width // 60)
    ink = []
    for y0 in range(0, height, f):
        row = []
        for x0 in range(0, width, f):
            block = [dark[y][x] for y in range(y0, min(y0 + f, height)) for x in range(x0, min(x0 + f, width))]
            row.append((2 * sum(block) > len(block)) == invert)
        ink.append(row)
    return _half_blocks(ink)
