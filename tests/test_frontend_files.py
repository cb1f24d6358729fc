import pytest

from coderemote_pipeline.rules import frontend_files as ff


@pytest.mark.parametrize(
    ("path", "cache"),
    [
        ("assets/app.3f9c2ab1d4.js", ff.IMMUTABLE),
        ("assets/style.0123456789.css", ff.IMMUTABLE),
        ("assets/chunk-ABCDEF12.js", ff.IMMUTABLE),
        ("index.html", ff.NO_CACHE),
        ("config.json", ff.NO_CACHE),
        ("favicon.ico", ff.SHORT),
        ("assets/app.js", ff.SHORT),
    ],
)
def test_cache_control(path, cache):
    assert ff.cache_control(path) == cache


@pytest.mark.parametrize(
    ("path", "ctype"),
    [
        ("index.html", "text/html; charset=utf-8"),
        ("assets/app.3f9c2ab1d4.js", "text/javascript; charset=utf-8"),
        ("assets/s.css", "text/css; charset=utf-8"),
        ("config.json", "application/json"),
        ("logo.svg", "image/svg+xml"),
        ("photo.png", "image/png"),
        ("blob.unknownext", "application/octet-stream"),
    ],
)
def test_content_type(path, ctype):
    assert ff.content_type(path) == ctype


def test_invalidation_skips_hashed_assets_and_covers_root():
    assert ff.invalidation_paths(["assets/app.3f9c2ab1d4.js", "index.html", "config.json"]) == [
        "/",
        "/config.json",
        "/index.html",
    ]
    assert ff.invalidation_paths(["assets/app.3f9c2ab1d4.js"]) == []
    assert ff.invalidation_paths([]) == []


def test_content_hash_ignores_order_and_sees_bytes():
    a, b = ff.BundleFile("a", b"1"), ff.BundleFile("b", b"2")
    assert ff.content_hash([a, b]) == ff.content_hash([b, a])
    assert ff.content_hash([a, b]) != ff.content_hash([a, ff.BundleFile("b", b"3")])


def test_collect_reads_relative_posix_paths(tmp_path):
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "x.js").write_text("x")
    (tmp_path / "index.html").write_text("i")
    assert [f.path for f in ff.collect(tmp_path)] == ["assets/x.js", "index.html"]
