"""The record of which registry blob holds which layer (actions/registry_push.py): bounded, newest kept, and a cache
only: a bad file costs a recompression, never a wrong push."""

from coderemote_pipeline.actions import registry_push
from coderemote_pipeline.actions.registry_push import Blob, LayerBlobs


def test_the_layer_record_keeps_the_layers_used_last_and_survives_a_bad_file(monkeypatch):
    monkeypatch.setattr(registry_push, "KEPT_LAYERS", 3)
    record = LayerBlobs("")
    for n in range(5):
        record.put(f"sha256:{n}", Blob(f"sha256:gz{n}", n, "repo", 100 + n))
    record.put("sha256:0", Blob("sha256:gz0", 0, "repo", 100))  # used again: newest
    again = LayerBlobs(record.to_json())
    assert [d for d in ("sha256:0", "sha256:1", "sha256:2", "sha256:3", "sha256:4") if again.get(d)] == [
        "sha256:0", "sha256:3", "sha256:4"
    ]
    # Only the image's own layers are left uncompressed by size, never another layer of the same size.
    assert again.sizes(["sha256:3", "sha256:9"]) == {103}
    assert LayerBlobs("{not json").get("sha256:0") is None  # an unreadable record: every layer compressed again
