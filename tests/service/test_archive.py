"""Bundles uploaded as tar archives: read safely, published like JSON uploads."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import httpx
import pytest

from juncture.api.archive import read_archive
from juncture.api.problems import ApiError

from .server import Server
from .test_http import V1, bundle


def tar(entries: dict[str, bytes], *, gzip: bool = True, link: str | None = None) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz" if gzip else "w") as archive:
        for name, content in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
        if link is not None:
            info = tarfile.TarInfo(link)
            info.type = tarfile.SYMTYPE
            info.linkname = "/etc/passwd"
            archive.addfile(info)
    return out.getvalue()


def test_a_single_top_directory_is_stripped():
    files = read_archive(tar({"b/acct.yaml": b"x", "b/data/users.yaml": b"y"}))
    assert files == {"acct.yaml": b"x", "data/users.yaml": b"y"}
    assert read_archive(tar({"a.yaml": b"1"}, gzip=False)) == {"a.yaml": b"1"}


def test_a_directory_of_bundles_is_merged_like_juncture_publish_merges_it():
    tree = {
        "./shop/shop.yaml": b"s", "./shop/shop_test.yaml": b"t", "./shop/data/users.yaml": b"u",
        "./agent/agent.yaml": b"a", "./agent/data/tasks.yaml": b"k",
    }  # fmt: skip
    assert read_archive(tar(tree)) == {
        "shop.yaml": b"s", "shop_test.yaml": b"t", "data/users.yaml": b"u",
        "agent.yaml": b"a", "data/tasks.yaml": b"k",
    }  # fmt: skip
    # the same, under one top directory
    assert read_archive(tar({f"top/{k[2:]}": v for k, v in tree.items()})) == read_archive(
        tar(tree)
    )
    for clash in ({"a/data/d.yaml": b"1", "b/data/d.yaml": b"2"},
                  {"data/d.yaml": b"1", "b/x.yaml": b"x", "b/data/d.yaml": b"2"}):  # fmt: skip
        with pytest.raises(ApiError) as info:
            read_archive(tar(clash))
        assert (info.value.code, info.value.status) == ("request.invalid", 400)
        assert "`data/d.yaml` is in more than one bundle" in info.value.detail


@pytest.mark.parametrize(
    "data",
    [
        tar({"../escape.yaml": b"x"}),
        tar({"/abs.yaml": b"x"}),
        tar({"a.yaml": b"x"}, link="evil.yaml"),
        b"not a tar at all",
        tar({"a.yaml": bytes(range(256)) * 64})[:300],
    ],
)
def test_unsafe_or_broken_archives_are_refused(data: bytes):
    with pytest.raises(ApiError) as info:
        read_archive(data)
    assert info.value.code == "request.invalid"


def test_upload_an_archive_over_http(tmp_path: Path):
    server = Server(tmp_path / "t.db", bundle(tmp_path / "v1", "10m")).start()
    try:
        body = tar({"v2/acct.yaml": V1.replace("WINDOW", "1m").encode()})
        with httpx.Client(
            base_url=server.url,
            timeout=10,
            headers={"Authorization": f"Bearer {server.admin_token()}"},
        ) as admin:
            response = admin.post(
                "/admin/v1/versions",
                content=body,
                params={"activate": "true", "comment": "from a tarball"},
                headers={"Content-Type": "application/gzip"},
            )
            assert response.status_code == 201, response.text
            assert response.json()["active"] is True
            versions = admin.get("/admin/v1/versions").json()["versions"]
            assert versions[0]["comment"] == "from a tarball" and versions[0]["active"]
            refused = admin.post(
                "/admin/v1/versions",
                content=tar({"../x.yaml": b"x"}),
                headers={"Content-Type": "application/gzip"},
            )
            assert refused.status_code == 400
    finally:
        server.stop()


def test_inflation_past_the_ratio_is_refused():
    """Within the size limits, but inflating past 100 times its size beyond the first MiB."""
    bomb = tar({"a.yaml": bytes(4 << 20)})
    assert len(bomb) < 40_000
    with pytest.raises(ApiError) as info:
        read_archive(bomb)
    assert info.value.code == "request.too_large"
    assert read_archive(tar({"a.yaml": bytes(1 << 19)})) == {"a.yaml": bytes(1 << 19)}


def test_other_compressions_are_refused():
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:bz2") as archive:
        entry = tarfile.TarInfo("a.yaml")
        entry.size = 1
        archive.addfile(entry, io.BytesIO(b"x"))
    with pytest.raises(ApiError) as info:
        read_archive(out.getvalue())
    assert info.value.code == "request.invalid"
