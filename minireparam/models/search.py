"""Semantic search over documentation paragraphs: encoders, a cosine index and recall@k.

A paragraph's vector is the mean of its sentences' vectors, each sentence encoded on its
own, because the encoders here were trained on single sentences. Two neural encoders are
available:

* ``SentenceVAEEncoder``: the posterior mean E_q[z | x] of a trained ``SentenceVAE``;
* ``LanguageModelEncoder``: the final LSTM hidden state of a trained ``CharLSTM`` after
  it reads the sentence.

``bag_of_characters`` is the baseline: a paragraph's character counts. Every index ranks
paragraphs by cosine similarity to the query vector.

In the evaluation (``make_search_task`` and ``recall_at_k``) each query is a held-out
sentence, removed from every indexed paragraph that contains it. A query counts as found
when one of the top k paragraphs belongs to a topic whose text contained the sentence.
"""
import math
from collections import namedtuple

import numpy as np

from .. import ops
from ..autograd.grad_mode import no_grad
from ..data.sentences import is_heldout, split_sentences, tokenize
from ..data.text import VALIDATION_FRACTION, default_text, load_topic_paragraphs
from ..ops._util import to_tensor

SearchTask = namedtuple("SearchTask", ["paragraphs", "queries"])
SearchTask.__doc__ = """The evaluation: indexed paragraphs and held-out query sentences.

paragraphs: list of (topic, list of sentences), with every query sentence removed.
queries: list of (sentence, sorted list of the topics whose paragraphs contained it).
"""


# -- vectors and ranking --------------------------------------------------------------------


def normalize_rows(vectors):
    """Scale each row to unit L2 norm (rows of zeros stay zero)."""
    vectors = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


def cosine_similarities(queries, keys):
    """Cosine similarity of every query row with every key row: (q, d), (n, d) -> (q, n)."""
    queries, keys = np.asarray(queries), np.asarray(keys)
    if queries.ndim != 2 or keys.ndim != 2 or queries.shape[1] != keys.shape[1]:
        raise ValueError(f"cosine_similarities: need (q, d) and (n, d) arrays, got {queries.shape} and {keys.shape}")
    return normalize_rows(queries) @ normalize_rows(keys).T


def top_k(similarities, k):
    """Indices of the ``k`` largest values of each row, best first (ties: lower index first)."""
    similarities = np.atleast_2d(similarities)
    k = min(k, similarities.shape[1])
    return np.argsort(-similarities, axis=1, kind="stable")[:, :k]


class SearchIndex:
    """Paragraph vectors with their topics and texts, searched by cosine similarity.

    Args:
        vectors (ndarray): (n, d) one vector per paragraph.
        topics (list of str): the topic of each paragraph.
        texts (list of str): the text of each paragraph (shown in results).
    """

    def __init__(self, vectors, topics, texts):
        vectors = np.asarray(vectors, dtype=np.float64)
        if vectors.ndim != 2 or not len(vectors) == len(topics) == len(texts):
            raise ValueError(f"SearchIndex: need (n, d) vectors with n topics and texts, got {vectors.shape}, "
                             f"{len(topics)} topics and {len(texts)} texts")
        self.vectors = normalize_rows(vectors)
        self.topics = list(topics)
        self.texts = list(texts)

    def __len__(self):
        return len(self.topics)

    def search(self, query_vectors, k=5):
        """Find the ``k`` nearest paragraphs of each query; return (indices (q, k), similarities (q, k))."""
        similarities = normalize_rows(np.atleast_2d(query_vectors)) @ self.vectors.T
        indices = top_k(similarities, k)
        return indices, np.take_along_axis(similarities, indices, axis=1)


def recall_at_k(index, query_vectors, query_topics, k=5):
    """Measure the share of queries with one of their topics among the topics of the top ``k`` paragraphs.

    Returns:
        (recall, hits): a float, and a bool array (q,) telling which queries were found.
    """
    indices, _similarities = index.search(query_vectors, k)
    hits = np.array([bool(set(topics) & {index.topics[i] for i in row})
                     for row, topics in zip(indices.tolist(), query_topics)])
    return float(hits.mean()), hits


def chance_recall_at_k(index, query_topics, k=5):
    """Compute the expected recall@k of a random ranking: the mean over queries of 1 − C(n − m, k)/C(n, k).

    n is the number of paragraphs and m the number whose topic is one of the query's.
    """
    n = len(index)
    topics = np.array(index.topics)
    chances = []
    for wanted in query_topics:
        matching = int(np.isin(topics, wanted).sum())
        chances.append(1.0 - math.comb(n - matching, k) / math.comb(n, k))
    return float(np.mean(chances))


# -- encoders -------------------------------------------------------------------------------


def _padded(id_lists, pad_id):
    lengths = np.array([len(ids) for ids in id_lists], dtype=np.int64)
    padded = np.full((len(id_lists), int(lengths.max())), pad_id, dtype=np.int64)
    for row, ids in enumerate(id_lists):
        padded[row, :len(ids)] = ids
    return padded, lengths


class _SentenceEncoder:
    """Shared batching: sentences sorted by length, encoded in batches, returned in input order."""

    max_tokens = 200
    batch_size = 128

    def encode_sentences(self, sentences):
        """Encode each sentence to one vector; return (n, d) float64."""
        id_lists = [self.token_ids(sentence)[:self.max_tokens] for sentence in sentences]
        id_lists = [ids if len(ids) else self.empty_ids() for ids in id_lists]
        order = np.argsort([len(ids) for ids in id_lists], kind="stable")
        vectors = [None] * len(id_lists)
        with no_grad():
            for start in range(0, len(order), self.batch_size):
                rows = order[start:start + self.batch_size]
                encoded = self.encode_batch(*_padded([id_lists[i] for i in rows], self.pad_id))
                for row, vector in zip(rows.tolist(), encoded):
                    vectors[row] = vector
        return np.stack(vectors).astype(np.float64)

    def encode_paragraphs(self, paragraphs):
        """Encode each paragraph (a list of sentences) as the mean of its sentence vectors."""
        sentences = [sentence for paragraph in paragraphs for sentence in paragraph]
        vectors = self.encode_sentences(sentences)
        bounds = np.cumsum([0] + [len(paragraph) for paragraph in paragraphs])
        return np.stack([vectors[bounds[i]:bounds[i + 1]].mean(axis=0) for i in range(len(paragraphs))])


class SentenceVAEEncoder(_SentenceEncoder):
    """Encode text as the posterior mean of a trained ``SentenceVAE``.

    Args:
        model (SentenceVAE): the trained model.
        vocabulary (TokenVocabulary): the vocabulary it was trained with.
        level (str): ``"word"`` or ``"char"``, as in training.
    """

    def __init__(self, model, vocabulary, level):
        self.model = model
        self.vocabulary = vocabulary
        self.level = level
        self.pad_id = vocabulary.pad_id

    def token_ids(self, sentence):
        return self.vocabulary.encode(tokenize(sentence, self.level))

    def empty_ids(self):
        return np.array([self.vocabulary.unk_id], dtype=np.int64)

    def encode_batch(self, tokens, lengths):
        self.model.eval()
        return self.model.encode(tokens, lengths).mean.data


class LanguageModelEncoder(_SentenceEncoder):
    """Encode text as a trained ``CharLSTM``'s last-layer hidden state after its last character.

    Characters outside the model's vocabulary are skipped.

    Args:
        model (CharLSTM): the trained model.
        vocabulary (CharVocabulary): its vocabulary.
    """

    def __init__(self, model, vocabulary):
        self.model = model
        self.vocabulary = vocabulary
        self.pad_id = 0

    def token_ids(self, sentence):
        known = "".join(char for char in sentence if char in self.vocabulary.index)
        return self.vocabulary.encode(known)

    def empty_ids(self):
        return np.array([0], dtype=np.int64)

    def encode_batch(self, tokens, lengths):
        self.model.eval()
        outputs, _state = self.model.lstm(self.model.embedding(to_tensor(tokens)))
        index = np.broadcast_to((lengths - 1)[:, None, None], (len(lengths), 1, outputs.shape[2]))
        return ops.take_along_axis(outputs, np.ascontiguousarray(index), axis=1).data[:, 0, :]


def bag_of_characters(texts, alphabet):
    """Character counts of each text over ``alphabet`` (a string); other characters are ignored.

    Returns:
        ndarray (len(texts), len(alphabet)) of float64 counts.
    """
    position = {char: i for i, char in enumerate(alphabet)}
    counts = np.zeros((len(texts), len(alphabet)), dtype=np.float64)
    for row, text in enumerate(texts):
        for char in text:
            column = position.get(char)
            if column is not None:
                counts[row, column] += 1.0
    return counts


# -- the evaluation task --------------------------------------------------------------------


def validation_topics(validation_fraction=VALIDATION_FRACTION):
    """List the pydoc topics whose whole text lies in the language models' validation split.

    The char-LSTM trains on the first 90% of the joined topic texts (sorted by name), so a
    sentence from these topics was never in its training text.
    """
    from pydoc_data.topics import topics

    text = default_text()
    split = len(text) - max(1, int(round(len(text) * validation_fraction)))
    inside, offset = [], 0
    for key in sorted(topics):
        if offset >= split:
            inside.append(key)
        offset += len(topics[key]) + 2       # the text and the blank line that joins it to the next
    return inside


def make_search_task(accept_query=None, allowed_topics=None, max_queries=None, pairs=None):
    """Build the held-out evaluation from the (topic, paragraph) pairs.

    Args:
        accept_query (callable | None): ``accept_query(sentence) -> bool`` keeps only some
            held-out sentences as queries (for example those of 4 to 30 words).
        allowed_topics (iterable of str | None): keep only queries from these topics.
        max_queries (int | None): keep at most this many queries, spread evenly over the list.
        pairs (list of (str, str) | None): (topic, paragraph) pairs (default: pydoc's).

    Returns:
        SearchTask: paragraphs (topic, sentences) with every query sentence removed and
        empty paragraphs dropped, and the queries with their topics.
    """
    pairs = load_topic_paragraphs() if pairs is None else pairs
    # Grammar paragraphs are indexed too, although no query comes from them.
    split = [(topic, split_sentences(paragraph, skip_grammar=False)) for topic, paragraph in pairs]
    allowed = None if allowed_topics is None else set(allowed_topics)

    query_topics = {}
    for topic, sentences in split:
        for sentence in sentences:
            if "::=" not in sentence and is_heldout(sentence) and (accept_query is None or accept_query(sentence)):
                query_topics.setdefault(sentence, set()).add(topic)
    queries = [(sentence, sorted(topics)) for sentence, topics in query_topics.items()
               if allowed is None or topics & allowed]
    if max_queries is not None and len(queries) > max_queries:
        keep = np.linspace(0, len(queries) - 1, max_queries).round().astype(np.int64)
        queries = [queries[i] for i in keep]

    removed = {sentence for sentence, _ in queries}
    paragraphs = []
    for topic, sentences in split:
        kept = [sentence for sentence in sentences if sentence not in removed]
        if kept:
            paragraphs.append((topic, kept))
    return SearchTask(paragraphs, queries)
