"""Photo uploads (照片): size-limited, type-checked by decoding, EXIF stripped, stored by SHA-256.

A phone photo's EXIF holds the GPS position, the device and often the owner's name: it is
removed by re-encoding the pixels only (after applying the orientation tag, so the picture stays
upright). The type is what Pillow decodes, never the file name or the client's content type.
The answer is an ``attachments`` entry of the canonical event (sha256, url, content_type).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import re
import warnings
from pathlib import Path as FsPath
from typing import Annotated

from fastapi import APIRouter, File, HTTPException, Path, UploadFile
from fastapi.responses import FileResponse
from PIL import Image, ImageOps, UnidentifiedImageError
from pydantic import BaseModel

from dispatch.store.uploads import may_read_upload, record_upload
from web.auth import CurrentPrincipal
from web.deps import RT
from web.schemas import ProblemOut

router = APIRouter(prefix="/api/v1/uploads", tags=["uploads"])

# Formats phones and cameras produce; everything else (SVG, PDF, HEIC without a decoder…) is 415.
_ALLOWED = {"JPEG": ("jpg", "image/jpeg"), "PNG": ("png", "image/png"), "WEBP": ("webp", "image/webp")}
# What phones write is sometimes MPO (a JPEG followed by more pictures: depth map, burst); its
# first picture is an ordinary JPEG and is kept as one.
_AS = {"MPO": "JPEG"}
_ACCEPTED = "请上传 JPEG、PNG 或 WebP 照片"
_MISSING = "没有这张照片，或您无权查看"
MAX_PIXELS = 50_000_000  # a 50-megapixel photo; more is a decompression bomb, not a phone picture
_NAME = r"^[0-9a-f]{64}\.(jpg|png|webp)$"


class UploadOut(BaseModel):
    sha256: str
    url: str
    content_type: str
    width: int
    height: int
    bytes: int


class UploadRejected(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def clean_image(raw: bytes) -> tuple[bytes, str, str, int, int]:
    """(clean bytes, extension, content type, width, height) of an image with every metadata block
    removed, or `UploadRejected`."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            probe = Image.open(io.BytesIO(raw))
            fmt = _AS.get(probe.format or "", probe.format or "")
            if fmt not in _ALLOWED:
                raise UploadRejected(415, f"不支持的图片格式（{fmt or '未知'}）：{_ACCEPTED}")
            if probe.width * probe.height > MAX_PIXELS:
                raise UploadRejected(413, f"图片像素过多（{probe.width}×{probe.height}），请缩小后再上传")
            probe.verify()  # structural check; the image must be reopened after verify()
            opened = Image.open(io.BytesIO(raw))
            opened.load()  # an MPO loads its first picture only
    except UploadRejected:
        raise
    # Pillow's messages name Python objects (<_io.BytesIO object at 0x…>): the reason is ours.
    except UnidentifiedImageError as exc:
        raise UploadRejected(415, f"无法识别的图片格式：{_ACCEPTED}") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UploadRejected(413, "图片像素过多，请缩小后再上传") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise UploadRejected(415, "图片已损坏或不完整，无法读取") from exc
    ext, ctype = _ALLOWED[fmt]
    img: Image.Image = ImageOps.exif_transpose(
        opened
    )  # keep the picture upright once the orientation tag is gone
    if img.mode == "P":
        img = img.convert("RGBA")  # a palette would not survive copying raw pixels
    # Pixels only: no EXIF, XMP, ICC, comments or text chunks come along.
    pixels = Image.frombytes(img.mode, img.size, img.tobytes())
    if fmt == "JPEG" and pixels.mode not in ("RGB", "L"):
        pixels = pixels.convert("RGB")
    out = io.BytesIO()
    pixels.save(out, format=fmt, **({"quality": 88} if fmt in ("JPEG", "WEBP") else {}))
    return out.getvalue(), ext, ctype, pixels.width, pixels.height


@router.post(
    "",
    response_model=UploadOut,
    status_code=201,
    responses={413: {"model": ProblemOut}, 415: {"model": ProblemOut}},
    summary="Upload a photo (JPEG/PNG/WebP): EXIF stripped, stored by its SHA-256",
)
async def upload(
    rt: RT, p: CurrentPrincipal, file: Annotated[UploadFile, File(description="the photo")]
) -> UploadOut:
    limit = rt.settings.max_upload_bytes
    raw = await file.read(limit + 1)
    if len(raw) > limit:
        raise HTTPException(413, detail=f"照片大于 {limit} 字节，请压缩后再上传")
    if not raw:
        raise HTTPException(422, detail="文件为空，请选择一张照片")
    directory: FsPath = rt.settings.upload_dir

    def run() -> UploadOut:
        data, ext, ctype, w, h = clean_image(raw)
        digest = hashlib.sha256(data).hexdigest()
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / f"{digest}.{ext}"
        if not target.exists():
            tmp = target.with_suffix(".part")
            tmp.write_bytes(data)
            tmp.replace(target)
        with rt.engine.begin() as conn:
            record_upload(conn, target.name, p.account_id)
        return UploadOut(
            sha256=digest,
            url=f"/api/v1/uploads/{target.name}",
            content_type=ctype,
            width=w,
            height=h,
            bytes=len(data),
        )

    try:
        return await asyncio.to_thread(run)
    except UploadRejected as exc:
        raise HTTPException(exc.status, detail=exc.reason) from exc


@router.get(
    "/{name}",
    responses={404: {"model": ProblemOut}},
    summary="An uploaded photo",
    response_class=FileResponse,
)
async def get_upload(rt: RT, p: CurrentPrincipal, name: Annotated[str, Path(pattern=_NAME)]) -> FileResponse:
    """To its sender and to whoever sees a case that refers to it; to anyone else it does not exist."""
    target = rt.settings.upload_dir / name
    if not re.match(_NAME, name) or not target.is_file():
        raise HTTPException(404, detail=_MISSING)

    def allowed() -> bool:
        with rt.engine.connect() as conn:
            return may_read_upload(conn, name, name.split(".", 1)[0], p)

    if not await asyncio.to_thread(allowed):
        raise HTTPException(404, detail=_MISSING)
    ctype = {"jpg": "image/jpeg", "png": "image/png", "webp": "image/webp"}[name.rsplit(".", 1)[1]]
    return FileResponse(target, media_type=ctype)
