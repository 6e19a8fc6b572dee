"""Tests of the GAN, the seq2seq translator, the sentence VAE, semantic search and their data.

Gradients are checked in float64 by central differences on tiny models, including the
WGAN-GP and R1 penalties, whose parameter gradients are second derivatives (a gradient
of a gradient taken with create_graph=True).
"""
import math
import re

import numpy as np
import pytest

import minireparam as mr
from minireparam import ops, optim
from minireparam.data import CharVocabulary, DataError
from minireparam.data.numbers import (
    SOURCE_VOCABULARY, TARGET_VOCABULARY, NumberBatch, NumberPairs, digits_to_number, number_to_words,
    tokenize_words,
)
from minireparam.data.sentences import SentenceBatch, TokenVocabulary, is_heldout, split_sentences, tokenize
from minireparam.models.classifier import DigitClassifier, random_shift, sample_quality
from minireparam.models.gan import DigitGAN, discriminator_step, gradient_penalty, input_gradient_norms, r1_penalty
from minireparam.models.history import MetricHistory
from minireparam.models import CharLSTM
from minireparam.models.search import (
    LanguageModelEncoder, SearchIndex, SentenceVAEEncoder, bag_of_characters, chance_recall_at_k, cosine_similarities, make_search_task, recall_at_k, top_k,
)
from minireparam.models.sentence_vae import SentenceVAE, kl_weight
from minireparam.models.seq2seq import Seq2SeqAttention, reverse_within_lengths


def gradcheck_parameters(model, loss):
    """Gradcheck ``loss()`` with respect to every parameter of ``model`` (in float64)."""

    def function(*parameters):
        return loss()

    # atol 1e-5 and rtol 1e-3 are gradcheck's defaults: float64 central differences with
    # eps 1e-6 are accurate to about 1e-8 on these O(1) losses.
    assert mr.gradcheck(function, list(model.parameters()))


# -- number words ------------------------------------------------------------------------------

KNOWN_WORDS = {
    0: "zero",
    7: "seven",
    13: "thirteen",
    20: "twenty",
    21: "twenty-one",
    100: "one hundred",
    101: "one hundred and one",
    312: "three hundred and twelve",
    1000: "one thousand",
    1005: "one thousand and five",
    1100: "one thousand one hundred",
    12005: "twelve thousand and five",
    100000: "one hundred thousand",
    312000: "three hundred and twelve thousand",
    999999: "nine hundred and ninety-nine thousand nine hundred and ninety-nine",
}


@pytest.mark.parametrize("number, words", sorted(KNOWN_WORDS.items()))
def test_number_to_words_known_cases(number, words):
    assert number_to_words(number) == words


@pytest.mark.parametrize("bad", [-1, 1_000_000, 3.5, True, "12"])
def test_number_to_words_rejects_bad_input(bad):
    with pytest.raises(DataError, match="expected an integer in"):
        number_to_words(bad)


def parse_words(text):
    """An independent reader of number words: the inverse the generator must have."""
    values = {word: i for i, word in enumerate(
        ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
         "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"])}
    values.update({word: 10 * (i + 2) for i, word in enumerate(
        ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"])})
    total, current = 0, 0
    for word in re.split(r"[ -]", text):
        if word == "and":
            continue
        if word == "hundred":
            current *= 100
        elif word == "thousand":
            total, current = (total + current) * 1000, 0
        else:
            current += values[word]
    return total + current


def test_number_words_read_back_exactly():
    numbers = np.concatenate([np.arange(0, 2000), np.random.default_rng(0).integers(0, 1_000_000, 3000)])
    for number in numbers.tolist():
        assert parse_words(number_to_words(number)) == number, number_to_words(number)


def test_number_words_are_distinct():
    numbers = np.random.default_rng(1).choice(1_000_000, size=5000, replace=False)
    assert len({number_to_words(n) for n in numbers.tolist()}) == 5000


def test_tokenize_words_splits_hyphens_and_rejects_others():
    assert tokenize_words("ninety-nine thousand") == ["ninety", "nine", "thousand"]
    with pytest.raises(DataError, match="unknown words \\['million'\\]"):
        tokenize_words("one million")


def test_number_batch_layout():
    batch = NumberBatch([312, 5])
    assert SOURCE_VOCABULARY.decode(batch.source[0]) == ["three", "hundred", "and", "twelve"]
    np.testing.assert_array_equal(batch.source_lengths, [4, 1])
    assert TARGET_VOCABULARY.decode(batch.decoder_input[0]) == ["3", "1", "2"]
    assert batch.decoder_input[0, 0] == TARGET_VOCABULARY.bos_id
    np.testing.assert_array_equal(batch.target[0], TARGET_VOCABULARY.encode(["3", "1", "2"]).tolist() + [2])
    np.testing.assert_array_equal(batch.target[1], [TARGET_VOCABULARY.index["5"], 2, -100, -100])


def test_training_numbers_skip_held_out_ones():
    pairs = NumberPairs()
    numbers = pairs.sample_training_numbers(20000, mr.Generator(0))
    assert not pairs.is_heldout(numbers).any()
    digit_counts = np.bincount([len(str(n)) for n in numbers.tolist()], minlength=7)[1:]
    # Each digit count has probability 1/6: 5 standard errors (about 260) bound a false failure below 1e-6.
    assert np.all(np.abs(digit_counts - 20000 / 6) < 5 * math.sqrt(20000 * (1 / 6) * (5 / 6))), digit_counts


def test_heldout_numbers_are_held_out_and_stable():
    pairs = NumberPairs()
    chosen = pairs.heldout_numbers(600)
    assert len(chosen) == 600
    assert len(set(chosen.tolist())) == 600
    assert pairs.is_heldout(chosen).all()
    np.testing.assert_array_equal(chosen, NumberPairs().heldout_numbers(600))


def test_digits_to_number_rejects_malformed():
    assert digits_to_number(list("312")) == 312
    assert digits_to_number(["0"]) == 0
    assert digits_to_number(list("012")) is None
    assert digits_to_number([]) is None


# -- seq2seq -----------------------------------------------------------------------------------


def tiny_translator(dtype=np.float64, bidirectional=True, seed=0, size=(4, 5, 3)):
    embedding_dim, hidden_size, attention_size = size
    model = Seq2SeqAttention(SOURCE_VOCABULARY.size, TARGET_VOCABULARY.size, embedding_dim, hidden_size,
                             attention_size, bidirectional=bidirectional, generator=mr.Generator(seed))
    return model.to(dtype)


def test_reverse_within_lengths_keeps_padding():
    np.testing.assert_array_equal(reverse_within_lengths([3, 1, 4], 4), [[2, 1, 0, 3], [0, 1, 2, 3], [3, 2, 1, 0]])


def test_seq2seq_shapes():
    model = tiny_translator(np.float32)
    batch = NumberBatch([312, 5, 999999])
    logits, weights = model(batch.source, batch.source_lengths, batch.decoder_input)
    assert logits.shape == (3, batch.decoder_input.shape[1], TARGET_VOCABULARY.size)
    assert weights.shape == (3, batch.decoder_input.shape[1], batch.source.shape[1])


@pytest.mark.parametrize("bidirectional", [True, False])
def test_seq2seq_ignores_padding(bidirectional):
    model = tiny_translator(bidirectional=bidirectional)
    batch = NumberBatch([7, 999999])
    alone = NumberBatch([7])
    logits, weights = model(batch.source, batch.source_lengths, batch.decoder_input)
    logits_alone, weights_alone = model(alone.source, alone.source_lengths, alone.decoder_input)
    steps = alone.decoder_input.shape[1]
    np.testing.assert_allclose(logits.data[0, :steps], logits_alone.data[0], rtol=1e-12, atol=1e-12)
    assert np.all(weights.data[0, :, 1:] == 0.0), "attention must give padded positions weight 0"
    np.testing.assert_allclose(weights.data.sum(axis=-1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(weights_alone.data[0], weights.data[0, :steps, :1], rtol=1e-12, atol=1e-12)


def test_seq2seq_loss_gradcheck():
    # Vocabularies of 6 source and 5 target tokens keep the parameter count (and time) small.
    model = Seq2SeqAttention(6, 5, embedding_dim=2, hidden_size=3, attention_size=2,
                             generator=mr.Generator(0)).to(np.float64)
    source = np.array([[3, 4], [5, 0]])               # the second source is padded
    decoder_input = np.array([[1, 3], [1, 4]])
    target = np.array([[3, 2], [2, -100]])
    gradcheck_parameters(model, lambda: model.loss(source, np.array([2, 1]), decoder_input, target))


def test_seq2seq_initial_loss_near_uniform():
    model = tiny_translator(np.float32)
    batch = NumberBatch(NumberPairs().sample_training_numbers(64, mr.Generator(1)))
    loss = model.loss(batch.source, batch.source_lengths, batch.decoder_input, batch.target).item()
    # Small random weights give nearly uniform logits: the loss is within 0.2 nats of log V.
    assert abs(loss - math.log(TARGET_VOCABULARY.size)) < 0.2


def test_beam_of_one_is_greedy():
    model = tiny_translator(seed=3)
    batch = NumberBatch([312, 45017, 9, 700000])
    greedy, greedy_weights = model.greedy_decode(batch.source, batch.source_lengths, 7)
    for row in range(len(batch)):
        tokens, score, weights = model.beam_search(batch.source[row], batch.source_lengths[row], 1, 7)
        expected = greedy[row]
        end = int(np.argmax(expected == model.eos_id)) + 1 if (expected == model.eos_id).any() else 7
        np.testing.assert_array_equal(tokens, expected[:end])
        np.testing.assert_allclose(weights, greedy_weights[row, :end], rtol=1e-12, atol=1e-12)
        assert score < 0.0


def sequence_log_probability(model, batch, row, tokens):
    """log p(tokens | source) under teacher forcing, summed over the tokens."""
    decoder_input = np.concatenate([[model.bos_id], tokens[:-1]])[None, :]
    logits, _ = model(batch.source[row:row + 1], batch.source_lengths[row:row + 1], decoder_input)
    log_probabilities = ops.log_softmax(logits, axis=-1).data[0]
    return float(log_probabilities[np.arange(len(tokens)), tokens].sum())


def test_beam_search_score_and_quality():
    model = tiny_translator(seed=4)
    batch = NumberBatch([312, 45017, 9])
    for row in range(len(batch)):
        greedy_tokens, greedy_score, _ = model.beam_search(batch.source[row], batch.source_lengths[row], 1, 7)
        tokens, score, _ = model.beam_search(batch.source[row], batch.source_lengths[row], 4, 7)
        assert score == pytest.approx(sequence_log_probability(model, batch, row, tokens), abs=1e-10)
        assert score >= greedy_score - 1e-12, "a wider beam never finds a worse hypothesis than greedy here"
        assert greedy_score == pytest.approx(sequence_log_probability(model, batch, row, greedy_tokens), abs=1e-10)


def test_beam_search_rejects_zero_beam():
    model = tiny_translator()
    with pytest.raises(ValueError, match="beam_size must be >= 1, got 0"):
        model.beam_search(np.array([3]), 1, 0, 7)


# -- GAN ---------------------------------------------------------------------------------------


def tiny_gan(loss="non-saturating", seed=0, data_dim=6):
    return DigitGAN(noise_dim=3, hidden_size=4, loss=loss, data_dim=data_dim, generator=mr.Generator(seed)).to(
        np.float64)


def test_gan_shapes_and_range():
    gan = tiny_gan(data_dim=64)
    images = gan.generate(7, mr.Generator(1))
    assert images.shape == (7, 64)
    assert np.all((images > 0.0) & (images < 1.0))
    assert gan.discriminator(images).shape == (7,)


def test_input_gradient_norms_of_linear_critic():
    weight = np.random.default_rng(0).normal(size=64)
    points = np.random.default_rng(1).normal(size=(4, 64))

    def critic(x):
        return ops.sum(x * weight, axis=-1) + 3.0

    norms = input_gradient_norms(critic, points)
    np.testing.assert_allclose(norms.data, np.linalg.norm(weight), rtol=1e-12)


def test_gradient_penalty_of_linear_critic():
    weight = mr.tensor(np.random.default_rng(0).normal(size=64), requires_grad=True)
    real = np.random.default_rng(1).uniform(size=(5, 64))
    fake = np.random.default_rng(2).uniform(size=(5, 64))
    penalty = gradient_penalty(lambda x: ops.sum(x * weight, axis=-1), real, fake, mr.Generator(0))
    norm = np.linalg.norm(weight.data)
    assert penalty.item() == pytest.approx((norm - 1.0) ** 2, rel=1e-12)
    penalty.backward()
    # d/dw (‖w‖ − 1)² = 2 (‖w‖ − 1) w / ‖w‖: reaching w needs the double backward.
    np.testing.assert_allclose(weight.grad, 2.0 * (norm - 1.0) * weight.data / norm, rtol=1e-10)


def test_wgan_gp_penalty_gradcheck():
    gan = tiny_gan("wgan-gp")
    rng = np.random.default_rng(3)
    real, fake = rng.uniform(size=(4, 6)), rng.uniform(size=(4, 6))
    critic = gan.discriminator
    gradcheck_parameters(critic, lambda: gradient_penalty(critic, real, fake, mr.Generator(5)))


def test_r1_penalty_gradcheck():
    gan = tiny_gan()
    real = np.random.default_rng(4).uniform(size=(4, 6))
    gradcheck_parameters(gan.discriminator, lambda: r1_penalty(gan.discriminator, real))


@pytest.mark.parametrize("loss", ["non-saturating", "wgan-gp"])
def test_gan_losses_gradcheck(loss):
    gan = tiny_gan(loss)
    real = np.random.default_rng(5).uniform(size=(4, 6))
    gradcheck_parameters(gan.discriminator, lambda: gan.discriminator_loss(real, mr.Generator(6))[0])
    gradcheck_parameters(gan.generator, lambda: gan.generator_loss(4, mr.Generator(7)))


def test_discriminator_loss_leaves_generator_alone():
    gan = tiny_gan()
    loss, figures = gan.discriminator_loss(np.random.default_rng(0).uniform(size=(4, 6)), mr.Generator(0))
    loss.backward()
    assert all(p.grad is None for p in gan.generator.parameters())
    assert set(figures) == {"real_score", "fake_score", "r1"}


def test_initial_discriminator_loss_is_two_log_two():
    gan = DigitGAN(noise_dim=8, hidden_size=16, r1_weight=0.0, generator=mr.Generator(0))
    with mr.no_grad():
        for p in gan.discriminator.network[-1].parameters():
            p.data[...] = 0.0
    loss, _ = gan.discriminator_loss(np.random.default_rng(0).uniform(size=(8, 64)).astype(np.float32))
    # With a zero output layer D outputs probability 1/2 everywhere: −log(1/2) for the real and the fake half.
    assert loss.item() == pytest.approx(2.0 * math.log(2.0), rel=1e-6)


def test_discriminator_step_skips_non_finite():
    gan = tiny_gan()
    optimizer = optim.SGD(gan.discriminator.parameters(), lr=0.1)
    before = [p.data.copy() for p in gan.discriminator.parameters()]
    real = np.full((4, 6), np.nan)
    loss, norm, _figures = discriminator_step(gan, optimizer, real, mr.Generator(0))
    assert math.isnan(loss)
    for old, p in zip(before, gan.discriminator.parameters()):
        np.testing.assert_array_equal(old, p.data)


def test_gan_rejects_unknown_loss():
    with pytest.raises(ValueError, match="loss must be one of"):
        DigitGAN(loss="minimax")


# -- digit classifier and sample quality --------------------------------------------------------


def test_sample_quality_hand_case():
    probabilities = np.full((4, 10), 0.02)
    probabilities[[0, 1, 2, 3], [3, 3, 7, 9]] = 0.82
    quality = sample_quality(probabilities, min_share=0.5)
    assert quality["mean_confidence"] == pytest.approx(0.82)
    assert quality["classes_covered"] == 3
    assert quality["classes_covered_min_share"] == 1
    assert quality["class_counts"] == [0, 0, 0, 2, 0, 0, 0, 1, 0, 1]


def test_sample_quality_rejects_bad_shape():
    with pytest.raises(ValueError, match="must have shape \\(n >= 1, 10\\)"):
        sample_quality(np.ones((3, 9)))


def test_random_shift_moves_whole_pixels():
    image = np.zeros((1, 64))
    image[0, 3 * 8 + 4] = 1.0           # one lit pixel at row 3, column 4
    shifted = random_shift(np.repeat(image, 200, axis=0), mr.Generator(0))
    rows, columns = np.nonzero(shifted.reshape(200, 8, 8))[1:]
    assert shifted.sum() == 200.0
    assert set(rows.tolist()) == {2, 3, 4}
    assert set(columns.tolist()) == {3, 4, 5}


def test_classifier_gradcheck():
    model = DigitClassifier(hidden_size=6, dropout=0.0, generator=mr.Generator(0)).to(np.float64)
    images = np.random.default_rng(0).uniform(size=(5, 64))
    labels = np.array([0, 3, 9, 3, 1])
    gradcheck_parameters(model, lambda: model.loss(images, labels))
    probabilities = model.probabilities(images)
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, rtol=1e-12)


# -- sentences and the sentence VAE --------------------------------------------------------------


def test_split_sentences_cases():
    text = "First one. Second \"quoted\" one!  Third?\nvalue.lower() stays.\n*****"
    assert split_sentences(text) == ["First one.", "Second \"quoted\" one!", "Third? value.lower() stays."]
    assert split_sentences("expr ::= a | b") == []
    assert split_sentences("expr ::= a | b", skip_grammar=False) == ["expr ::= a | b"]


def test_tokenize_levels():
    assert tokenize("Call __init__(x) 42 times.", "word") == ["call", "__init__", "(", "x", ")", "42", "times", "."]
    assert tokenize("a B", "char") == ["a", " ", "B"]
    with pytest.raises(DataError, match="level must be one of"):
        tokenize("x", "byte")


def test_heldout_split_is_a_fixed_tenth():
    sentences = [f"sentence number {i}." for i in range(5000)]
    share = np.mean([is_heldout(s) for s in sentences])
    assert 0.08 < share < 0.12      # CRC-32 buckets of distinct texts: 5000 draws of a 1-in-10 choice
    assert is_heldout(sentences[7]) == is_heldout("sentence number 7.")


def test_sentence_batch_targets():
    vocabulary = TokenVocabulary([["a", "b", "c"]])
    batch = SentenceBatch([vocabulary.encode(["a", "b", "c"]), vocabulary.encode(["b"])], vocabulary)
    a, b, c = vocabulary.encode(["a", "b", "c"]).tolist()
    np.testing.assert_array_equal(batch.decoder_input, [[1, a, b, c], [1, b, 0, 0]])
    np.testing.assert_array_equal(batch.target, [[a, b, c, 2], [b, 2, -100, -100]])
    assert vocabulary.encode(["zzz"]).tolist() == [vocabulary.unk_id]


def test_kl_weight_schedules():
    assert kl_weight(5, 0) == 1.0
    assert kl_weight(50, 100) == 0.5
    assert kl_weight(500, 100) == 1.0
    assert kl_weight(50, 100, "logistic") == pytest.approx(0.5)
    assert kl_weight(0, 100, "logistic") < 0.01
    with pytest.raises(ValueError, match="schedule must be one of"):
        kl_weight(1, 10, "cosine")


def tiny_sentence_vae(word_dropout=0.0):
    vocabulary = TokenVocabulary([list("abcdef")])
    model = SentenceVAE(vocabulary.size, embedding_dim=3, hidden_size=4, latent_dim=3, word_dropout=word_dropout,
                        generator=mr.Generator(0)).to(np.float64)
    batch = SentenceBatch([vocabulary.encode(list("abc")), vocabulary.encode(list("f"))], vocabulary)
    return model, vocabulary, batch


def test_sentence_vae_gradcheck():
    model, _vocabulary, batch = tiny_sentence_vae()

    def loss():
        reconstruction, kl = model.loss_terms(batch, mr.Generator(1))
        return reconstruction + 0.7 * kl

    gradcheck_parameters(model, loss)


def test_sentence_vae_encoding_ignores_padding():
    model, vocabulary, batch = tiny_sentence_vae()
    alone = SentenceBatch([vocabulary.encode(list("f"))], vocabulary)
    both = model.encode(batch.tokens, batch.lengths)
    single = model.encode(alone.tokens, alone.lengths)
    np.testing.assert_allclose(both.mean.data[1], single.mean.data[0], rtol=1e-12)
    np.testing.assert_allclose(both.scale.data[1], single.scale.data[0], rtol=1e-12)


def test_word_dropout_replaces_only_words():
    model, vocabulary, _batch = tiny_sentence_vae(word_dropout=0.5)
    decoder_input = np.array([[1] + [4] * 2000 + [0] * 10])
    dropped = model.drop_words(decoder_input, mr.Generator(0))
    assert dropped[0, 0] == vocabulary.bos_id
    assert np.all(dropped[0, -10:] == vocabulary.pad_id)
    share = np.mean(dropped[0, 1:2001] == vocabulary.unk_id)
    assert abs(share - 0.5) < 0.06   # 2000 draws: 5.4 standard errors
    model.eval()
    np.testing.assert_array_equal(model.drop_words(decoder_input, mr.Generator(0)), decoder_input)


def test_active_units_count():
    model, _vocabulary, batch = tiny_sentence_vae()
    count, variances = model.active_units([batch], threshold=0.0)
    assert count == 3
    with mr.no_grad():
        model.to_mean.weight.data[1] = 0.0
    count, variances = model.active_units([batch], threshold=1e-20)
    assert count == 2
    assert variances[1] == 0.0


def test_sentence_vae_decode_and_walk():
    model, vocabulary, batch = tiny_sentence_vae()
    sentences = model.sample_prior(3, max_length=6, generator=mr.Generator(0))
    assert len(sentences) == 3
    assert all(len(ids) <= 6 and vocabulary.eos_id not in ids.tolist() for ids in sentences)
    walk = model.interpolate(batch, steps=4, max_length=6)
    assert len(walk) == 4
    # The ends of the walk decode exactly the posterior means of the two sentences.
    means = model.encode(batch.tokens, batch.lengths).mean.data
    for end, ids in ((0, walk[0]), (1, walk[-1])):
        np.testing.assert_array_equal(model.decode(means[end:end + 1], 6)[0], ids)


# -- semantic search ------------------------------------------------------------------------------


def test_cosine_search_hand_case():
    keys = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0], [-3.0, 0.0]])
    index = SearchIndex(keys, ["x", "y", "xy", "minus x"], ["a", "b", "c", "d"])
    indices, similarities = index.search(np.array([[2.0, 0.1]]), k=3)
    np.testing.assert_array_equal(indices, [[0, 2, 1]])
    np.testing.assert_allclose(similarities[0], [2 / math.hypot(2, 0.1), 2.1 / math.hypot(2, 0.1) / math.sqrt(2),
                                                 0.1 / math.hypot(2, 0.1)], rtol=1e-12)
    np.testing.assert_allclose(cosine_similarities(np.array([[0.0, 5.0]]), keys), [[0.0, 1.0, 1 / math.sqrt(2), 0.0]],
                               atol=1e-15)


def test_top_k_breaks_ties_by_index():
    np.testing.assert_array_equal(top_k(np.array([[0.5, 0.9, 0.9, 0.1]]), 3), [[1, 2, 0]])


def test_recall_at_k_hand_case():
    index = SearchIndex(np.eye(3), ["a", "b", "c"], ["", "", ""])
    queries = np.array([[1.0, 0.1, 0.0], [0.0, 0.0, 1.0]])
    recall, hits = recall_at_k(index, queries, [["b"], ["c", "z"]], k=1)
    np.testing.assert_array_equal(hits, [False, True])
    assert recall == 0.5
    # With k = 2 the first query finds a and b, the second c and then a (the tie of a and b goes to a).
    recall, hits = recall_at_k(index, queries, [["c"], ["a"]], k=2)
    np.testing.assert_array_equal(hits, [False, True])


def test_chance_recall_matches_enumeration():
    index = SearchIndex(np.eye(6), ["a", "a", "b", "c", "c", "c"], [""] * 6)
    import itertools

    subsets = list(itertools.combinations(range(6), 2))
    for wanted in (["a"], ["b"], ["c", "b"]):
        found = np.mean([any(index.topics[i] in wanted for i in subset) for subset in subsets])
        assert chance_recall_at_k(index, [wanted], k=2) == pytest.approx(found)


def test_bag_of_characters_counts():
    counts = bag_of_characters(["abca", "zz"], "abc")
    np.testing.assert_array_equal(counts, [[2.0, 1.0, 1.0], [0.0, 0.0, 0.0]])


def test_search_task_removes_queries():
    sentences = [f"Sentence {i} talks about things." for i in range(60)]
    heldout = [s for s in sentences if is_heldout(s)]
    assert heldout, "the fixture needs at least one held-out sentence"
    pairs = [("first", " ".join(sentences[:30])), ("second", " ".join(sentences[30:])), ("third", heldout[0])]
    task = make_search_task(pairs=pairs)
    assert sorted(s for s, _ in task.queries) == sorted(heldout)
    assert dict(task.queries)[heldout[0]] == sorted({"third", "first" if heldout[0] in sentences[:30] else "second"})
    indexed = [s for _, paragraph in task.paragraphs for s in paragraph]
    assert not set(indexed) & set(heldout)
    assert [topic for topic, _ in task.paragraphs] == ["first", "second"]    # "third" became empty


def test_metric_history_round_trip():
    history = MetricHistory()
    for step in range(30):
        history.append({"kl": step, "beta": 1.0})
    restored = MetricHistory()
    restored.load_state_dict(history.state_dict())
    assert restored.get("kl") == list(range(30))
    assert restored.mean("kl", "first", window=10) == 4.5
    assert math.isnan(restored.mean("missing", "last"))


def test_sentence_vae_decodes_float64_latents():
    vocabulary = TokenVocabulary([list("abc")])
    model = SentenceVAE(vocabulary.size, embedding_dim=3, hidden_size=4, latent_dim=2, generator=mr.Generator(0))
    means = np.zeros((2, 2), dtype=np.float64)      # posterior_means returns float64
    sentences = model.decode(means, max_length=4)
    assert len(sentences) == 2


def test_beam_search_with_length_penalty():
    model = tiny_translator(seed=5)
    batch = NumberBatch([45017])
    tokens, score, weights = model.beam_search(batch.source[0], batch.source_lengths[0], 3, 7, length_penalty=1.0)
    assert score == pytest.approx(sequence_log_probability(model, batch, 0, tokens), abs=1e-10)
    assert weights.shape == (len(tokens), batch.source.shape[1])


def test_language_model_encoder_uses_final_state():
    vocabulary = CharVocabulary("abcd ")
    model = CharLSTM(vocabulary.size, embedding_dim=3, hidden_size=4, generator=mr.Generator(0))
    encoder = LanguageModelEncoder(model, vocabulary)
    sentences = ["ab cd", "d", "zzz a"]          # "z" is not in the vocabulary and is skipped
    vectors = encoder.encode_sentences(sentences)
    for sentence, vector in zip(sentences, vectors):
        ids = vocabulary.encode("".join(char for char in sentence if char in vocabulary.index))
        _logits, (h, _c) = model(ids[None, :])
        # float32, and the batched GEMMs may sum in another order than the single-row ones.
        np.testing.assert_allclose(vector, h.data[0, 0], rtol=1e-5, atol=1e-6)


def test_paragraph_vector_is_mean_of_sentences():
    vocabulary = TokenVocabulary([["alpha", "beta", "gamma"]])
    model = SentenceVAE(vocabulary.size, embedding_dim=3, hidden_size=4, latent_dim=2, generator=mr.Generator(0))
    encoder = SentenceVAEEncoder(model, vocabulary, "word")
    paragraphs = [["alpha beta.", "gamma."], ["beta gamma alpha."]]
    sentence_vectors = encoder.encode_sentences(["alpha beta.", "gamma.", "beta gamma alpha."])
    paragraph_vectors = encoder.encode_paragraphs(paragraphs)
    np.testing.assert_allclose(paragraph_vectors[0], sentence_vectors[:2].mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(paragraph_vectors[1], sentence_vectors[2], rtol=1e-12)
