"""Thumbnails of sample images, written beside the report so the page opens from disk anywhere.

Each distinct image becomes one JPEG of at most `THUMBNAIL_SIDE` pixels on its longest side, named
after the source's path, size and modification time, so regenerating a report reuses earlier
thumbnails. Masks are not burnt in: the page draws them from the RLE over the thumbnail, which keeps
report generation fast for 10,000 samples.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image, UnidentifiedImageError

THUMBNAIL_SIDE = 320
"""Longest side of a thumbnail; 640-pixel COCO images then decode at half scale (JPEG draft mode)."""


def thumbnail_name(source: Path) -> str | None:
    """The thumbnail file name of ``source``, or ``None`` when the image file does not exist."""
    try:
        stat = source.stat()
    except OSError:
        return None
    if not source.is_file():
        return None
    key = f"{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    return hashlib.sha1(key.encode()).hexdigest()[:20] + ".jpg"


def _write_thumbnail(source: Path, target: Path, side: int) -> bool:
    if target.exists():
        return True
    try:
        with Image.open(source) as image:
            width, height = image.size
            ratio = min(1.0, side / max(width, height, 1))
            size = (max(1, round(width * ratio)), max(1, round(height * ratio)))
            image.draft("RGB", size)  # JPEG: decode at a reduced scale (1/2, 1/4, 1/8), much faster
            image.thumbnail(size, Image.Resampling.BILINEAR)
            rgb = image.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError):
        return False
    temporary = target.with_name(f".{target.name}.{os.getpid()}")
    rgb.save(temporary, "JPEG", quality=85)
    os.replace(temporary, target)
    return True


def write_thumbnails(sources: Iterable[str], folder: Path, side: int = THUMBNAIL_SIDE) -> dict[str, str]:
    """Write the thumbnails of ``sources`` (image paths) into ``folder``, on all CPU cores.

    Returns:
        source path -> thumbnail file name, for the images that exist and can be read.
        Thumbnails in ``folder`` that no source needs any more are deleted.
    """
    folder.mkdir(parents=True, exist_ok=True)
    names = {source: thumbnail_name(Path(source)) for source in dict.fromkeys(sources)}
    wanted = {source: name for source, name in names.items() if name is not None}
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        written = list(pool.map(lambda item: _write_thumbnail(Path(item[0]), folder / item[1], side), wanted.items()))
    result = {source: name for (source, name), ok in zip(wanted.items(), written, strict=True) if ok}
    keep = set(result.values())
    for stale in folder.glob("*.jpg"):
        if stale.name not in keep:
            stale.unlink()
    return result


__all__ = ["THUMBNAIL_SIDE", "thumbnail_name", "write_thumbnails"]
