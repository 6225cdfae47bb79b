import pytest

from plimsoll.retrieval.chunking import ChunkingParams, chunk_document


def test_windows_overlap_and_ids_are_stable():
    text = " ".join(f"w{i}" for i in range(50))
    params = ChunkingParams(chunk_words=20, overlap_words=5)
    chunks = list(chunk_document("doc", "Title", text, "s", params))
    assert [c.chunk_id for c in chunks] == ["doc#0", "doc#1", "doc#2"]
    assert chunks[0].text.split()[-5:] == chunks[1].text.split()[1:6]  # after the title
    assert chunks[-1].text.endswith("w49")
    assert chunks == list(chunk_document("doc", "Title", text, "s", params))


def test_chunk_hash_covers_only_the_embedded_text():
    params = ChunkingParams(chunk_words=20, overlap_words=0)
    a = next(chunk_document("a", "T", "same words here", "s1", params))
    b = next(chunk_document("b", "T", "same  words\nhere", "s2", params))
    c = next(chunk_document("c", "T", "other words", "s1", params))
    assert a.chunk_hash != c.chunk_hash
    assert a.text == "T\nsame words here" and b.text == "T\nsame  words\nhere"
    assert next(chunk_document("d", "T", "same words here", "s9", params)).chunk_hash == (
        a.chunk_hash)


def test_short_and_empty_documents():
    params = ChunkingParams(chunk_words=20, overlap_words=5)
    assert len(list(chunk_document("d", "", "three words only", "s", params))) == 1
    assert list(chunk_document("d", "", "", "s", params)) == []


@pytest.mark.parametrize(("size", "overlap"), [(4, 0), (20, 20), (20, -1)])
def test_bad_params_are_refused(size, overlap):
    with pytest.raises(ValueError):
        ChunkingParams(chunk_words=size, overlap_words=overlap)
