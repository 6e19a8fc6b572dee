"""Tests of minireparam.data: the pydoc corpus, files, vocabulary, windows, digits, batches."""
import sys

import numpy as np
import pytest

import minireparam as mr
from minireparam.data import (
    BatchIterator, CharVocabulary, DataError, TextCorpus, default_text, iterate_in_order, load_corpus,
    load_digits, load_topic_paragraphs, random_windows, read_text_file, sequential_windows,
)


@pytest.fixture(scope="module")
def corpus():
    return load_corpus()


# -- text ------------------------------------------------------------------------------------


def test_default_text_joins_sorted_topics():
    from pydoc_data.topics import topics

    expected = "\n\n".join(topics[key] for key in sorted(topics))
    assert default_text() == expected


def test_corpus_split_is_last_tenth(corpus):
    text = default_text()
    assert corpus.train_text + corpus.validation_text == text
    assert len(corpus.validation_text) == round(0.1 * len(text)), "validation must be the last 10% of characters"
    assert corpus.source == "pydoc_data.topics"


def test_corpus_ids_decode_to_splits(corpus):
    assert corpus.vocabulary.decode(corpus.train_ids) == corpus.train_text
    assert corpus.vocabulary.decode(corpus.validation_ids) == corpus.validation_text
    assert corpus.train_ids.dtype == np.int64


def test_vocabulary_sorted_and_round_trips():
    vocabulary = CharVocabulary("hello, wörld")
    assert vocabulary.chars == sorted(set("hello, wörld"))
    assert vocabulary.size == len(set("hello, wörld"))
    assert vocabulary.decode(vocabulary.encode("wörld")) == "wörld"


def test_vocabulary_unknown_characters_listed():
    vocabulary = CharVocabulary("abc")
    with pytest.raises(DataError, match=r"'xz'"):
        vocabulary.encode("axbz")


def test_vocabulary_decode_rejects_bad_ids():
    vocabulary = CharVocabulary("abc")
    with pytest.raises(DataError, match=r"\[3\]"):
        vocabulary.decode([0, 3])
    with pytest.raises(DataError, match=r"\[-1\]"):
        vocabulary.decode([-1])


def test_vocabulary_rejects_empty_text():
    with pytest.raises(DataError, match="empty"):
        CharVocabulary("")


def test_topic_paragraphs_cover_every_topic():
    from pydoc_data.topics import topics

    pairs = load_topic_paragraphs()
    assert [topic for topic, _ in pairs] == sorted(topic for topic, _ in pairs), "pairs must be in sorted topic order"
    assert {topic for topic, _ in pairs} == {key for key in topics if topics[key].strip()}
    for topic, paragraph in pairs:
        assert paragraph.strip(), f"empty paragraph in topic {topic!r}"
        assert "\n\n" not in paragraph, f"paragraph of {topic!r} spans a blank line"
        first_line = paragraph.splitlines()[0]
        assert first_line in topics[topic], f"paragraph not found in topic {topic!r}: {first_line!r}"


def test_topic_paragraphs_keep_every_word():
    from pydoc_data.topics import topics

    pairs = load_topic_paragraphs()
    for key in ("assert", "if"):
        joined = " ".join(paragraph for topic, paragraph in pairs if topic == key)
        assert joined.split() == topics[key].split(), f"words of topic {key!r} lost or reordered"


def test_read_text_file_missing(tmp_path):
    path = tmp_path / "absent.txt"
    with pytest.raises(FileNotFoundError, match="absent.txt"):
        read_text_file(path)


def test_read_text_file_directory_is_not_a_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        read_text_file(tmp_path)


@pytest.mark.parametrize("content", [b"", b"  \n\n\t "])
def test_read_text_file_empty(tmp_path, content):
    path = tmp_path / "empty.txt"
    path.write_bytes(content)
    with pytest.raises(DataError, match="empty"):
        read_text_file(path)


def test_read_text_file_undecodable_names_byte(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("caf\u00e9 au lait".encode("latin-1"))
    with pytest.raises(DataError, match=r"not valid UTF-8: byte 3"):
        read_text_file(path)


def test_load_corpus_from_utf8_file(tmp_path):
    path = tmp_path / "poem.txt"
    text = "Über allen Gipfeln ist Ruh.\n" * 20
    path.write_text(text, encoding="utf-8")
    corpus = load_corpus(path)
    assert corpus.train_text + corpus.validation_text == text
    assert corpus.source == str(path)
    assert "Ü" in corpus.vocabulary.chars


def test_corpus_rejects_bad_fraction():
    with pytest.raises(DataError, match="validation_fraction"):
        TextCorpus("abcdef", validation_fraction=1.0)


# -- windows ---------------------------------------------------------------------------------


def test_random_windows_shift_by_one(corpus):
    inputs, targets = random_windows(corpus.train_ids, 8, 16, mr.Generator(0))
    assert inputs.shape == (8, 16)
    assert targets.shape == (8, 16)
    np.testing.assert_array_equal(inputs[:, 1:], targets[:, :-1])
    for row_inputs, row_targets in zip(inputs, targets):
        window = corpus.vocabulary.decode(np.append(row_inputs, row_targets[-1]))
        assert window in corpus.train_text


def test_random_windows_reproducible(corpus):
    first = random_windows(corpus.train_ids, 4, 8, mr.Generator(7))
    again = random_windows(corpus.train_ids, 4, 8, mr.Generator(7))
    other = random_windows(corpus.train_ids, 4, 8, mr.Generator(8))
    np.testing.assert_array_equal(first[0], again[0])
    assert not np.array_equal(first[0], other[0])


def test_random_windows_reach_both_ends():
    ids = np.arange(10, dtype=np.int64)
    inputs, targets = random_windows(ids, 2000, 4, mr.Generator(0))
    assert inputs[:, 0].min() == 0, "offset 0 never drawn"
    assert targets[:, -1].max() == 9, "the last character is never a target"


def test_windows_reject_short_split():
    ids = np.arange(10, dtype=np.int64)
    with pytest.raises(DataError, match="validation split has 10 characters"):
        sequential_windows(ids, 10, split_name="validation")
    with pytest.raises(DataError, match="training split"):
        random_windows(ids, 2, 12, mr.Generator(0))


def test_sequential_windows_cover_split_once():
    ids = np.arange(23, dtype=np.int64)
    inputs, targets = sequential_windows(ids, 5)
    assert inputs.shape == (4, 5)
    np.testing.assert_array_equal(targets.reshape(-1), np.arange(1, 21))
    np.testing.assert_array_equal(inputs.reshape(-1), np.arange(0, 20))


def test_sequential_windows_spread_when_capped():
    ids = np.arange(101, dtype=np.int64)
    inputs, _ = sequential_windows(ids, 10, max_windows=4)
    np.testing.assert_array_equal(inputs[:, 0], [0, 30, 60, 90])


# -- digits ----------------------------------------------------------------------------------


def test_digits_split_and_scale():
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    raw = sklearn_datasets.load_digits()
    digits = load_digits()
    assert digits.train_images.shape == (1437, 64)
    assert digits.test_images.shape == (360, 64)
    assert digits.train_images.dtype == np.float32
    assert digits.train_images.min() == 0.0
    assert digits.train_images.max() == 1.0
    np.testing.assert_array_equal(digits.train_images, (raw.data[:1437] / 16.0).astype(np.float32))
    np.testing.assert_array_equal(digits.test_images, (raw.data[1437:] / 16.0).astype(np.float32))
    np.testing.assert_array_equal(digits.test_labels, raw.target[1437:])


def test_digits_without_sklearn_names_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match=r"examples\]"):
        load_digits()


# -- batches ---------------------------------------------------------------------------------


def test_batches_fixed_size_and_epoch_permutation():
    rows = np.arange(10)
    batches = BatchIterator(rows, batch_size=3, generator=mr.Generator(0))
    epoch = [next(batches) for _ in range(batches.batches_per_epoch)]
    assert all(len(batch) == 3 for batch in epoch)
    seen = np.concatenate(epoch)
    assert len(set(seen.tolist())) == 9, "an epoch must not repeat a row"
    next(batches)
    assert batches.epoch == 1


def test_batches_index_arrays_together():
    x = np.arange(20).reshape(10, 2)
    y = np.arange(10) * 10
    batches = BatchIterator(x, y, batch_size=4, generator=mr.Generator(3))
    for _ in range(5):
        xb, yb = next(batches)
        np.testing.assert_array_equal(xb[:, 0] * 5, yb)


def test_batches_reproducible_and_resumable():
    rows = np.arange(50)
    uninterrupted = BatchIterator(rows, batch_size=8, generator=mr.Generator(1))
    expected = [next(uninterrupted) for _ in range(20)]

    generator = mr.Generator(1)
    first = BatchIterator(rows, batch_size=8, generator=generator)
    got = [next(first) for _ in range(9)]
    iterator_state, generator_state = first.state_dict(), generator.state_dict()

    resumed_generator = mr.Generator(99)
    resumed_generator.load_state_dict(generator_state)
    resumed = BatchIterator(rows, batch_size=8, generator=resumed_generator)
    resumed.load_state_dict(iterator_state)
    got += [next(resumed) for _ in range(11)]
    for step, (a, b) in enumerate(zip(expected, got)):
        np.testing.assert_array_equal(a, b, err_msg=f"batch {step} differs after resume")


def test_batches_state_for_other_data_rejected():
    state = BatchIterator(np.arange(10), batch_size=2, generator=mr.Generator(0))
    next(state)
    other = BatchIterator(np.arange(12), batch_size=2, generator=mr.Generator(0))
    with pytest.raises(DataError, match="same data set"):
        other.load_state_dict(state.state_dict())


def test_batches_unshuffled_in_order():
    batches = BatchIterator(np.arange(6), batch_size=2, shuffle=False)
    np.testing.assert_array_equal(np.concatenate([next(batches) for _ in range(3)]), np.arange(6))


def test_batches_argument_errors():
    with pytest.raises(DataError, match="same length"):
        BatchIterator(np.arange(4), np.arange(5), batch_size=2)
    with pytest.raises(DataError, match="between 1 and the number of rows 4"):
        BatchIterator(np.arange(4), batch_size=5)
    with pytest.raises(DataError, match="at least one array"):
        BatchIterator(batch_size=1)


def test_iterate_in_order_covers_every_row():
    x = np.arange(10)
    batches = list(iterate_in_order(x, batch_size=4))
    assert [len(batch) for batch in batches] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate(batches), x)
